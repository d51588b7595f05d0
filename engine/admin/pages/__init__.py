"""The web console's pages on the admin listener (login and logout: :mod:`engine.admin.console`).

Importing the page modules registers their routes on :data:`router`.
"""

from __future__ import annotations

from engine.admin.pages import alerts, audit_log, dashboard, dead_letters, identity, messages
from engine.admin.pages.common import router

__all__ = ["router"]
_ = (alerts, audit_log, dashboard, dead_letters, identity, messages)
