"""The operations of a ``transform`` step, as ``channels.yaml`` declares them.

Each is a frozen model checked when the configuration loads (paths, regular expressions, date
formats, code tables) whose ``build()`` gives the function that edits a message. Every
operation may carry ``when:``, a condition in the language of filters and routes, tested on the
message as the earlier operations left it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.errors import TransformError
from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.paths import EVERY, FieldPath, parse_field_path
from engine.routes.conditions import Condition
from engine.transforms.user import edits
from engine.transforms.user.code_tables import load_table
from engine.transforms.user.dates import date_reader
from engine.transforms.user.fast import Memo
from engine.transforms.user.when import compiled


def _path(value: str) -> str:
    parse_field_path(value)
    return value


def _editable_path(value: str) -> str:
    path = parse_field_path(value)
    if path.field in (1, 2) and path.segment in ("MSH", "FHS", "BHS"):
        raise ValueError(f"{value}: MSH-1 and MSH-2 hold the delimiters and cannot be edited")
    return value


def _segment_name(value: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", value):
        raise ValueError(f"{value!r} is not a segment name (three capitals or digits, e.g. ZBE)")
    return value


Path = Annotated[str, AfterValidator(_path), Field(description="HL7 path, e.g. PID-3.1, OBX[*]-3")]
Target = Annotated[
    str, AfterValidator(_editable_path), Field(description="HL7 path written, e.g. MSH-5")
]
SegmentName = Annotated[str, AfterValidator(_segment_name)]


class Op(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )

    when: Condition | None = Field(default=None, description="apply only to matching messages")

    def edit(self) -> edits.Edit:
        raise NotImplementedError

    def build(self) -> edits.Edit:
        """The edit, guarded by ``when``."""
        edit = self.edit()
        if self.when is None:
            return edit
        when = compiled(self.when)

        def guarded(msg: EditableMessage) -> None:
            if when(msg):
                edit(msg)

        return guarded


def _memo(path: FieldPath) -> Memo | None:
    """A memo of the operation's results (:mod:`engine.transforms.user.fast`), except on
    patient segments and free text (OBX-5 values, NTE comments): their values may name the
    patient, and are kept in no cache."""
    if path.segment in edits.PATIENT_SEGMENTS or path.segment == "NTE":
        return None
    return None if path.segment == "OBX" and path.field == 5 else {}


def _single_source(src: str, dst: str) -> None:
    s, d = parse_field_path(src), parse_field_path(dst)
    if s.rep == EVERY:
        raise ValueError(f"from: {src} names several repetitions; name one (e.g. [1])")
    if s.occurrence == EVERY and (d.segment != s.segment or d.occurrence != EVERY):
        raise ValueError(
            f"from: {src} is on every {s.segment}: the target must be too ({s.segment}[*]-n)"
        )
    if src == dst:
        raise ValueError("from and the target are the same place")


class SetOp(Op):
    """Set a field (component...) to a literal ``value`` or to the value ``from`` another
    field."""

    op: Literal["set"]
    field: Target
    value: str | None = None
    source: Path | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.value is None) == (self.source is None):
            raise ValueError("give exactly one of value or from")
        if self.source is not None:
            _single_source(self.source, self.field)
        return self

    def edit(self) -> edits.Edit:
        dst = parse_field_path(self.field)
        if self.source is not None:
            src = parse_field_path(self.source)
            return lambda m: edits.copy(m, src, dst, move=False)
        value = self.value or ""
        return lambda m: edits.set_literal(m, dst, value, only_empty=False)


class DefaultOp(SetOp):
    """Like set, only where the place is empty."""

    op: Literal["default"]  # type: ignore[assignment]

    def edit(self) -> edits.Edit:
        dst = parse_field_path(self.field)
        if self.source is not None:
            src = parse_field_path(self.source)
            return lambda m: edits.copy(m, src, dst, move=False, only_empty=True)
        value = self.value or ""
        return lambda m: edits.set_literal(m, dst, value, only_empty=True)


class CopyOp(Op):
    """Copy ``from`` to ``to`` (a field with its repetitions and components, or a part)."""

    op: Literal["copy"]
    source: Path = Field(alias="from")
    to: Target

    @model_validator(mode="after")
    def _source(self) -> Self:
        _single_source(self.source, self.to)
        return self

    def edit(self) -> edits.Edit:
        src, dst = parse_field_path(self.source), parse_field_path(self.to)
        return lambda m: edits.copy(m, src, dst, move=False)


class MoveOp(CopyOp):
    """Copy ``from`` to ``to``, then blank ``from``."""

    op: Literal["move"]  # type: ignore[assignment]
    source: Target = Field(alias="from")

    def edit(self) -> edits.Edit:
        src, dst = parse_field_path(self.source), parse_field_path(self.to)
        return lambda m: edits.copy(m, src, dst, move=True)


class DeleteOp(Op):
    """Blank a field, repetition, component or subcomponent."""

    op: Literal["delete"]
    field: Target

    def edit(self) -> edits.Edit:
        path = parse_field_path(self.field)
        return lambda m: edits.delete(m, path)


class DeleteSegmentsOp(Op):
    """Remove every segment called ``segment`` (``Z*``: every segment starting with Z)."""

    op: Literal["delete_segments"]
    segment: str = Field(pattern=r"^([A-Z][A-Z0-9]{2}|[A-Z][A-Z0-9]?\*)$")

    @model_validator(mode="after")
    def _not_header(self) -> Self:
        if self.segment in ("MSH", "M*", "MS*"):
            raise ValueError("the MSH segment cannot be removed")
        return self

    def edit(self) -> edits.Edit:
        name = self.segment
        return lambda m: edits.delete_segments(m, name)


class AddSegmentOp(Op):
    """Add a segment, after the last ``after`` segment or before the first ``before`` one
    (else at the end), with literal ``fields`` by position: ``{"1": "x", "3.2": "y"}``."""

    op: Literal["add_segment"]
    segment: SegmentName
    fields: dict[str, str] = Field(default_factory=dict, description="position -> value")
    after: SegmentName | None = None
    before: SegmentName | None = None

    @model_validator(mode="after")
    def _positions(self) -> Self:
        if self.segment == "MSH":
            raise ValueError("a message has one MSH segment")
        if self.after is not None and self.before is not None:
            raise ValueError("give after or before, not both")
        for key in self.fields:
            path = parse_field_path(f"{self.segment}-{key}")
            if path.wildcard or path.occurrence != 1:
                raise ValueError(f"fields: {key!r} must name one place (e.g. 3, 3.2, 3[2].1)")
        return self

    def edit(self) -> edits.Edit:
        values = tuple((parse_field_path(f"{self.segment}-{k}"), v) for k, v in self.fields.items())
        name, after, before = self.segment, self.after, self.before

        def add(msg: EditableMessage) -> None:
            edits.add_segment(msg, name, values, after, before)

        return add


class ReplaceOp(Op):
    """Regular-expression replacement in each value (Python ``re.sub``; ``\\1`` for groups)."""

    op: Literal["replace"]
    field: Target
    pattern: str
    replacement: str = Field(alias="with")

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        try:
            re.compile(self.pattern).sub(self.replacement, "")
        except (re.error, IndexError) as exc:
            raise ValueError(f"pattern or with: {exc}") from exc
        return self

    def edit(self) -> edits.Edit:
        path, regex, repl = parse_field_path(self.field), re.compile(self.pattern), self.replacement
        memo = _memo(path)
        return edits.leaf_editor(path, lambda v: regex.sub(repl, v), memo)


class CaseOp(Op):
    op: Literal["case"]
    field: Target
    to: Literal["upper", "lower"]

    def edit(self) -> edits.Edit:
        path = parse_field_path(self.field)
        change, memo = (str.upper if self.to == "upper" else str.lower), _memo(path)
        return edits.leaf_editor(path, change, memo)


class TruncateOp(Op):
    """Cut each value to ``length`` characters."""

    op: Literal["truncate"]
    field: Target
    length: int = Field(ge=1)

    def edit(self) -> edits.Edit:
        path, length = parse_field_path(self.field), self.length
        memo = _memo(path)
        return edits.leaf_editor(path, lambda v: v[:length], memo)


class DateOp(Op):
    """Rewrite a date or time: read with the first of the ``from`` formats that fits, write
    with ``to`` (Python ``strptime``/``strftime`` codes, e.g. ``%Y%m%d%H%M`` to
    ``%Y%m%d%H%M%S``). A value no format reads is kept, or dead-letters the message."""

    op: Literal["date"]
    field: Target
    formats: tuple[str, ...] = Field(alias="from", min_length=1)
    to: str
    invalid: Literal["keep", "dead_letter"] = "keep"

    def edit(self) -> edits.Edit:
        path, readers, out, strict = (
            parse_field_path(self.field),
            tuple(date_reader(f) for f in self.formats),
            self.to,
            self.invalid == "dead_letter",
        )

        def change(value: str) -> str:
            for read in readers:
                try:
                    return read(value).strftime(out)
                except ValueError:
                    continue
            if strict:  # the position only: a date may be a birth date
                raise TransformError(f"{path}: a value matches none of the date formats")
            return value

        return edits.leaf_editor(path, change)


class UnmappedDefault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    default: str = Field(min_length=1, description="the code an unmapped code becomes")


class MapOp(Op):
    """Replace codes through a code table (CSV or YAML, read at load). On a coded field
    (``OBX-3``) the table's ``to_text`` and ``to_system`` fill components 2 and 3."""

    op: Literal["map"]
    field: Target
    table: str = Field(description="CSV (from,to[,to_text,to_system]) or YAML file")
    unmapped: Literal["keep", "dead_letter"] | UnmappedDefault = Field(
        description="a code the table lacks: keep it, dead-letter (unmapped_code), or "
        "{default: CODE}"
    )

    @model_validator(mode="after")
    def _table_loads(self) -> Self:
        load_table(self.table)  # TableError is a ValueError: reported at this key
        return self

    def edit(self) -> edits.Edit:
        path, table = parse_field_path(self.field), load_table(self.table)
        policy = self.unmapped
        unmapped = (
            policy.default
            if isinstance(policy, UnmappedDefault)
            else (None if policy == "keep" else "")
        )
        memo = _memo(path)
        return edits.code_mapper(path, table, unmapped, memo)


AnyOp = Annotated[
    SetOp
    | DefaultOp
    | CopyOp
    | MoveOp
    | DeleteOp
    | DeleteSegmentsOp
    | AddSegmentOp
    | ReplaceOp
    | CaseOp
    | TruncateOp
    | DateOp
    | MapOp,
    Field(discriminator="op"),
]

__all__ = ["AnyOp", "FieldPath"]
