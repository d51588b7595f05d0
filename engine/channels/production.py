"""The production safety check: what a file setting ``engine.profile: production`` must not do.

Run by the loader after the models validated, so that each problem is reported like any other
configuration error (file:line, key) and a production file that breaks a rule neither passes
``aiguillage check`` nor starts. The demo profile is not checked.
"""

from __future__ import annotations

import os
from typing import Any

from engine.channels.config import ChannelsFile
from engine.security.key_settings import KEY_ENV
from engine.security.peers import is_loopback

Loc = tuple[str | int, ...]


def production_problems(config: ChannelsFile) -> list[tuple[Loc, str]]:
    """Listeners (sources, the admin console, the record API) beyond loopback without TLS,
    HTTP sources without authentication, accepted
    test INS; empty for a file that is not of the production profile."""
    if config.engine.profile != "production":
        return []
    problems: list[tuple[Loc, str]] = []
    if config.engine.identity.accept_test_ins:
        problems.append(
            (
                ("engine", "identity", "accept_test_ins"),
                "the production profile accepts no test or demo INS: set it to false",
            )
        )
    for i, channel in enumerate(config.channels):
        if channel.enabled:
            problems.extend(_source_problems(("channels", i, "source"), channel.source))
    for name in ("admin", "record_api"):  # the console and the record's read side
        listener = getattr(config.engine, name, None)
        if listener is not None:
            problems.extend(_clear_text(("engine", name), listener))
    return problems


def production_warnings(config: ChannelsFile) -> list[str]:
    """What a production file should not do but may (printed by ``aiguillage check``, logged
    at start): document bytes stored in clear (no ``engine.encryption``, no
    ``AIGUILLAGE_RECORD_KEY``)."""
    if config.engine.profile != "production" or config.engine.encryption is not None:
        return []
    if os.environ.get(KEY_ENV):
        return []
    return [
        "the record store keeps document bytes in clear: set engine.encryption (key_file) or "
        f"{KEY_ENV} (README, Security)"
    ]


def _clear_text(loc: Loc, listener: Any) -> list[tuple[Loc, str]]:
    host = listener.host
    if getattr(listener, "tls", None) is not None or is_loopback(host):
        return []
    return [
        (
            (*loc, "host"),
            f"listens on {host} without TLS: set tls (cert_file, key_file) or listen on 127.0.0.1",
        )
    ]


def _source_problems(loc: Loc, source: Any) -> list[tuple[Loc, str]]:
    host = getattr(source, "host", None)
    if host is None:  # not a listener (directory, AMQP consumer)
        return []
    problems = _clear_text(loc, source)
    tls = getattr(source, "tls", None)
    if source.type == "http" and not _authenticated(source, tls):
        problems.append(
            (
                (*loc, "auth"),
                "the HTTP source authenticates no sender: use tokens (auth: token, `aiguillage "
                "senders add`) or client certificates (tls.client_ca_file)",
            )
        )
    return problems


def _authenticated(source: Any, tls: Any) -> bool:
    """Bearer tokens, or client certificates checked against a CA (mTLS)."""
    auth = getattr(source, "auth", None)
    if auth is not None and auth != "none":
        return True
    return getattr(tls, "client_ca_file", None) is not None
