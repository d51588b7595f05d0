"""Alerts: rules from ``channels.yaml`` evaluated by an APScheduler job
(:class:`engine.alerts.service.AlertService`), notified to the log, webhooks and email, and kept
in a history (``aiguillage alerts``)."""
