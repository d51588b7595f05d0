"""The JSON schema of ``channels.yaml``, generated from the models (never hand-kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.channels.config import ChannelsFile


def channels_schema() -> dict[str, Any]:
    schema = ChannelsFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Aiguillage channels.yaml"
    return schema


def render() -> str:
    return json.dumps(channels_schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
