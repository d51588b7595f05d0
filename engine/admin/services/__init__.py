"""What the operations API and the console pages both do: each service takes a connection and
the acting :class:`engine.admin.roles.Principal`, applies the role rules, and records the
audit trail. Routers and pages only translate HTTP."""
