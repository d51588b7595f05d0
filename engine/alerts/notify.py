"""Where alerts go: the log, webhooks (a JSON POST) and email (SMTP). A notifier that fails is
logged and never stops the others nor the evaluation; the alert stays in the history."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import structlog

from engine.alerts.history import Transition
from engine.channels.alert_settings import Email, Notify, Webhook

log = structlog.get_logger("engine.alerts")


class Notifier(Protocol):
    def send(self, transition: Transition) -> None: ...


def payload(t: Transition) -> dict[str, Any]:
    """The JSON a webhook receives (times in ISO-8601 UTC)."""
    return {
        "alert_id": t.alert_id,
        "status": t.kind,
        "rule": t.rule,
        "channel": t.channel or None,
        "at": t.at.isoformat().replace("+00:00", "Z"),
        "summary": t.summary,
    }


class LogNotifier:
    def send(self, transition: Transition) -> None:
        emit = log.warning if transition.kind == "fired" else log.info
        emit(f"alert_{transition.kind}", **payload(transition))


class WebhookNotifier:
    def __init__(self, config: Webhook) -> None:
        self.config = config

    def send(self, transition: Transition) -> None:
        headers = {}
        token = os.environ.get(self.config.token_env) if self.config.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = httpx.post(
            self.config.url,
            json=payload(transition),
            headers=headers,
            timeout=self.config.timeout_seconds,
        )
        response.raise_for_status()


class EmailNotifier:
    def __init__(self, config: Email) -> None:
        self.config = config

    def send(self, transition: Transition) -> None:
        c = self.config
        mail = EmailMessage()
        what = "FIRING" if transition.kind == "fired" else "resolved"
        mail["Subject"] = f"[aiguillage] {what}: {transition.rule} {transition.channel}".strip()
        mail["From"] = c.sender
        mail["To"] = ", ".join(c.to)
        body = payload(transition)
        mail.set_content("\n".join(f"{k}: {v}" for k, v in body.items() if v is not None))
        with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.timeout_seconds) as smtp:
            if c.starttls:
                smtp.starttls()
            if c.username:
                smtp.login(c.username, os.environ.get(c.password_env or "", ""))
            smtp.send_message(mail)


def notifiers(config: Notify) -> list[Notifier]:
    out: list[Notifier] = [LogNotifier()] if config.log else []
    out += [WebhookNotifier(w) for w in config.webhooks]
    if config.email is not None:
        out.append(EmailNotifier(config.email))
    return out


def deliver(targets: Sequence[Notifier], transitions: Sequence[Transition]) -> int:
    """Send every transition to every notifier; returns how many sends failed."""
    failed = 0
    for t in transitions:
        for target in targets:
            try:
                target.send(t)
            except (OSError, httpx.HTTPError, smtplib.SMTPException) as exc:
                failed += 1
                log.error(
                    "alert_notify_failed",
                    notifier=type(target).__name__,
                    alert_id=t.alert_id,
                    error=type(exc).__name__,
                )
    return failed
