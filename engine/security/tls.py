"""TLS settings of listeners and clients (the ``ssl`` module, TLS 1.2 or later).

``tls: {cert_file, key_file}`` on a source serves TLS; ``client_ca_file`` asks every client for
a certificate signed by that CA (mTLS), and ``allowed_subjects`` narrows it to certificates
whose CN or a DNS/URI SAN is listed. ``tls: {ca_file, cert_file?, key_file?}`` on a destination
verifies the server against ``ca_file`` and presents a client certificate when given one.
The files are read when the engine builds its listeners, before any socket opens (a missing
file is an error then, naming the file), so that a channels file can be checked on a machine
that does not hold the keys.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerTls(_Frozen):
    """TLS on a listening source."""

    cert_file: Path = Field(description="PEM certificate chain of this listener")
    key_file: Path = Field(description="PEM private key of this listener")
    client_ca_file: Path | None = Field(
        default=None,
        description="mTLS: clients must present a certificate signed by this CA (PEM)",
    )
    allowed_subjects: tuple[str, ...] = Field(
        default=(),
        description="mTLS: accept only client certificates whose CN or SAN is listed",
    )

    @model_validator(mode="after")
    def _subjects_need_client_certs(self) -> Self:
        if self.allowed_subjects and self.client_ca_file is None:
            raise ValueError("allowed_subjects needs client_ca_file (client certificates)")
        return self

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file is not None:
            ctx.load_verify_locations(cafile=self.client_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def subject_allowed(self, cert: dict[str, Any] | None) -> bool:
        """Whether a verified client certificate may send here (always, without a list)."""
        if not self.allowed_subjects:
            return True
        return any(name in self.allowed_subjects for name in certificate_names(cert))


class ClientTls(_Frozen):
    """TLS toward a destination."""

    ca_file: Path = Field(description="CA (PEM) that signed the server's certificate")
    cert_file: Path | None = Field(default=None, description="client certificate (mTLS)")
    key_file: Path | None = Field(default=None, description="client private key (mTLS)")
    server_hostname: str | None = Field(
        default=None, description="name to verify in the server certificate (default: host)"
    )

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None and self.key_file is not None:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def certificate_names(cert: dict[str, Any] | None) -> list[str]:
    """The CN(s) and DNS/URI/email SANs of a certificate as ``SSLObject.getpeercert()`` gives it."""
    if not cert:
        return []
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [
        value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "URI", "email")
    ]
    return names


def certificate_identity(cert: dict[str, Any] | None) -> str:
    """The sender identity of a client certificate: ``cert:<CN>`` (else its first SAN)."""
    names = certificate_names(cert)
    return f"cert:{names[0]}" if names else ""


def readable(path: Path) -> bool:
    """Whether a configured key or certificate file can be opened (checked at load time)."""
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False
