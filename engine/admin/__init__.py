"""The admin listener: health, Prometheus metrics, the operations API and the console's
accounts, sessions and audit trail (DESIGN.md §4: never on an ingest port)."""
