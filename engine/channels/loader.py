"""Load ``channels.yaml`` into :class:`ChannelsFile`, reporting every error with file:line:key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError
from sqlalchemy import make_url

from engine.channels.alert_settings import alert_problems
from engine.channels.config import ChannelsFile
from engine.channels.production import production_problems
from engine.channels.references import reference_problems
from engine.channels.sources import deprecated_keys
from engine.db import DEFAULT_URL

log = structlog.get_logger("engine.config")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def load_channels(path: str | Path) -> ChannelsFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), 0, "", f"cannot read: {exc.strerror}")]) from exc
    config = with_database_beside(parse_channels(text, str(path)), path.parent)
    return with_key_file_beside(config, path.parent)


def with_key_file_beside(config: ChannelsFile, folder: Path) -> ChannelsFile:
    """A relative ``engine.encryption.key_file`` is read from the channels file's folder too."""
    encryption = config.engine.encryption
    if encryption is None or encryption.key_file.is_absolute():
        return config
    resolved = encryption.model_copy(update={"key_file": (folder / encryption.key_file).absolute()})
    engine = config.engine.model_copy(update={"encryption": resolved})
    return config.model_copy(update={"engine": engine})


def with_database_beside(config: ChannelsFile, folder: Path) -> ChannelsFile:
    """A relative SQLite path is read from the channels file's folder, not from wherever the
    command runs: ``aiguillage stats -c /srv/aig/channels.yaml`` finds the engine's journal.
    ``AIGUILLAGE_DATABASE_URL`` still wins (:func:`engine.db.database_url`)."""
    url = make_url(config.engine.database_url or DEFAULT_URL)
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return config
    if path.startswith("file:") or Path(path).is_absolute():
        return config
    resolved = url.set(database=str((folder / path).absolute()))
    engine = config.engine.model_copy(
        update={"database_url": resolved.render_as_string(hide_password=False)}
    )
    return config.model_copy(update={"engine": engine})


def parse_channels(text: str, filename: str = "<channels>") -> ChannelsFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError([ConfigIssue(filename, line, "", f"YAML syntax: {exc}")]) from exc
    issues = _duplicate_keys(root, filename, ())
    if not isinstance(data, dict):
        issues.append(ConfigIssue(filename, 1, "", "expected a mapping with a 'channels' list"))
        raise ConfigError(issues)
    config: ChannelsFile | None = None
    try:
        config = ChannelsFile.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        issues.extend(_issue(filename, root, err) for err in errors if not _echo(err, errors))
    problems = reference_problems(data)
    if config is not None:
        problems += production_problems(config)
        problems += alert_problems(config.alerts, {c.name for c in config.channels})
    for loc, message in problems:
        line, _ = _locate(root, loc)
        # The key in full, even when the file leaves it out (a default the rule refuses).
        issues.append(ConfigIssue(filename, line, _dotted(list(loc)), message))
    if issues or config is None:
        raise ConfigError(sorted(issues, key=lambda i: i.line))
    _warn_deprecated(root, data, filename)
    return config


def _warn_deprecated(root: yaml.Node | None, data: dict[str, Any], filename: str) -> None:
    """One warning for the whole file naming each old key still used (they keep working)."""
    renamed = deprecated_keys(data)
    if not renamed:
        return
    keys = []
    for loc, new in renamed:
        line, _ = _locate(root, loc)
        keys.append(f"{filename}:{line}: {_dotted(list(loc))} (now {new})")
    log.warning("config_deprecated_keys", keys=keys)


def _echo(err: Any, errors: list[Any]) -> bool:
    """pydantic adds "should have at least 1 item" to a tuple whose only item failed."""
    loc = tuple(err["loc"])
    return err["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
    )


def _issue(filename: str, root: yaml.Node | None, err: Any) -> ConfigIssue:
    loc: tuple[str | int, ...] = tuple(err["loc"])
    line, path = _locate(root, loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
        path.append(loc[-1])  # the missing key is, by definition, not in the file
    return ConfigIssue(filename, line, _dotted(path), message)


def _locate(node: yaml.Node | None, loc: tuple[str | int, ...]) -> tuple[int, list[str | int]]:
    """Follow a pydantic error location through the YAML node tree: (line, path found)."""
    line = node.start_mark.line + 1 if node is not None else 0
    path: list[str | int] = []
    for part in loc:
        child = _child(node, part)
        if child is None:
            continue  # a union/discriminator tag pydantic adds, not a key in the file
        node, key_line = child
        line = key_line
        path.append(part)
    return line, path


def _child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value, key.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item, item.start_mark.line + 1
    return None


def _dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _duplicate_keys(
    node: yaml.Node | None, filename: str, path: tuple[str | int, ...]
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                issues.append(
                    ConfigIssue(
                        filename,
                        key.start_mark.line + 1,
                        _dotted([*path, key.value]),
                        "duplicate key",
                    )
                )
            seen.add(key.value)
            issues.extend(_duplicate_keys(value, filename, (*path, key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            issues.extend(_duplicate_keys(item, filename, (*path, i)))
    return issues
