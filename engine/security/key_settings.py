"""``engine.encryption`` in channels.yaml: the keys that encrypt document bytes at rest in the
record store (``engine.security.keys``). Config only: no runtime import."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

#: The environment variable holding keys (base64, comma-separated, newest last); it wins over
#: ``key_file``, as AIGUILLAGE_DATABASE_URL wins over engine.database_url.
KEY_ENV = "AIGUILLAGE_RECORD_KEY"


class EncryptionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_file: Path = Field(
        description=(
            "the keyring: one key a line, the last one encrypts, every one decrypts (relative: "
            "to the channels file's folder); mode 0600, never in a repository. "
            f"{KEY_ENV} wins over it"
        ),
    )
    create_key: bool = Field(
        default=False,
        description=(
            "make the key file (0600, in a 0700 folder) with a new key when it does not exist "
            "(the demo); otherwise a missing key file stops the engine at start"
        ),
    )
