"""The shared record's access rules (DOMAIN.md §6), pure: no database, no web.

``model`` says who reads and what is known about a record; ``rules`` decides what each may see
and do; ``sections`` arranges what is visible the way the DMP shows it.
"""
