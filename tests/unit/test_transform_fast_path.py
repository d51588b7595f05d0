"""The transform step's fast path gives what the straightforward way gives.

The reference (tests/transform_reference/) is the editable message and the operations as they
were before the fast path: random messages (repetitions, components, subcomponents, escapes,
empty and missing fields, other delimiters) go through random operations, both ways; the
output texts, or the errors, must be the same, also when a step's memos are warm from earlier
messages. The compiled date formats are compared with strptime.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.errors import TransformError
from engine.hl7v2.editable import EditableMessage
from engine.hl7v2.paths import parse_field_path
from engine.hl7v2.reader import Message
from engine.routes.conditions import Condition
from engine.transforms.user.dates import date_reader
from engine.transforms.user.ops import _memo
from engine.transforms.user.steps import TransformStep
from engine.transforms.user.when import compiled
from tests.transform_reference import ops as reference

#: Random steps are slow to draw: AIGUILLAGE_FUZZ_EXAMPLES runs more (tests/fuzz/README.md).
EXAMPLES = int(os.environ.get("AIGUILLAGE_FUZZ_EXAMPLES", "60"))
SEGMENTS = ("PID", "OBX", "ZBE")  # few names, few fields: the paths meet values
DELIMITERS = ("|^~\\&", "#:*!$")  # field, component, repetition, escape, subcomponent
CODES = ("GB", "GR", "HB", "NFS", "X\\S\\Y", "ZZ")
ALLOWED = ("A", "b", "GB", "7", " ", "é", "g/dl", "2024", "0306")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tables") / "codes.csv"
    path.write_text(
        "from,to,to_text,to_system\nGB,6690-2,Leuko^cytes,LN\nGR,789-8,Ery&thro,LN\n"
        "HB,718-7,Hb,\nX^Y,C|D,,\n",
        encoding="utf-8",
    )
    return str(path)


@st.composite
def values(draw: st.DrawFn, d: str) -> str:
    """A raw field: repetitions of components of subcomponents, with escapes."""
    _, c, r, e, s = d
    leaf = st.one_of(
        st.sampled_from(ALLOWED),
        st.sampled_from(CODES).map(lambda v: v.replace("\\", e)),
        st.just(""),
        st.just(f"{e}F{e}x"),
        st.just(f"a{e}X41{e}"),
        st.just("x\ty"),
        st.sampled_from(("20240306", "202403061010", "20240306101010+0100", "2024-03-06")),
    )
    sub = st.lists(leaf, min_size=1, max_size=2).map(s.join)
    comp = st.lists(sub, min_size=1, max_size=4).map(c.join)
    return draw(st.lists(comp, min_size=1, max_size=2).map(r.join))


@st.composite
def messages(draw: st.DrawFn, d: str) -> str:
    f = d[0]
    msh = f"MSH{f}{d[1:]}{f}LAB{f}{draw(values(d))}{f}DPI{f}X{f}20240306{f}{f}ORU{d[1]}R01{f}1"
    segs = [msh]
    for name in draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5)):
        fields = draw(st.lists(values(d), min_size=1, max_size=5))
        segs.append(f.join([name, *fields]))
    return "\r".join(segs)


def paths(segments: tuple[str, ...] = (*SEGMENTS, "MSH")) -> st.SearchStrategy[str]:
    @st.composite
    def one(draw: st.DrawFn) -> str:
        seg = draw(st.sampled_from(segments))
        occurrence = draw(st.sampled_from(("", "", "[2]", "[*]")))
        field = draw(st.integers(3 if seg == "MSH" else 1, 5))
        rep = draw(st.sampled_from(("", "", "", "[1]", "[2]", "[*]")))
        comp = draw(st.sampled_from(("", "", ".1", ".2", ".3", ".1.2", ".2.1")))
        return f"{seg}{occurrence}-{field}{rep}{comp}"

    return one()


def operations(table: str) -> st.SearchStrategy[dict[str, Any]]:
    p = paths()
    when = st.one_of(
        st.none(),
        st.just({"message_types": ["ORU^R01"]}),
        st.just({"message_types": ["ADT^*"]}),
        st.builds(lambda f: {"fields": [{"field": f, "exists": True}]}, p),
        st.builds(lambda f: {"fields": [{"field": f, "equals": "GB"}]}, p),
    )
    op = st.one_of(
        st.builds(lambda f, v: {"op": "set", "field": f, "value": v}, p, st.sampled_from(ALLOWED)),
        st.builds(lambda f, v: {"op": "default", "field": f, "value": v}, p, st.just("D^E")),
        st.builds(lambda f, s: {"op": "set", "field": f, "from": s}, p, p),
        st.builds(lambda f, t: {"op": "copy", "from": f, "to": t}, p, p),
        st.builds(lambda f, t: {"op": "move", "from": f, "to": t}, p, p),
        st.builds(lambda f: {"op": "delete", "field": f}, p),
        st.builds(
            lambda n: {"op": "delete_segments", "segment": n}, st.sampled_from(("ZBE", "Z*"))
        ),
        st.builds(
            lambda a: {"op": "add_segment", "segment": "ZRT", "fields": {"1": "A", "3.2": "b"}} | a,
            st.sampled_from(({}, {"after": "OBX"}, {"before": "PID"})),
        ),
        st.builds(
            lambda f, pat: {"op": "replace", "field": f, "pattern": pat, "with": "R"},
            p,
            st.sampled_from(("^g/dl$", "b", "^$", "[0-9]")),
        ),
        st.builds(
            lambda f, t: {"op": "case", "field": f, "to": t}, p, st.sampled_from(("upper", "lower"))
        ),
        st.builds(lambda f, n: {"op": "truncate", "field": f, "length": n}, p, st.integers(1, 3)),
        st.builds(
            lambda f, inv: {
                "op": "date",
                "field": f,
                "from": ["%Y%m%d%H%M%S%z", "%Y%m%d%H%M", "%Y%m%d"],
                "to": "%d/%m/%Y %H:%M%z",
                "invalid": inv,
            },
            p,
            st.sampled_from(("keep", "dead_letter")),
        ),
        st.builds(
            lambda f, u: {"op": "map", "field": f, "table": table, "unmapped": u},
            p,
            st.sampled_from(("keep", "dead_letter", {"default": "UNK^1"})),
        ),
    )
    return st.builds(lambda o, w: o if w is None else o | {"when": w}, op, when)


def valid(op: dict[str, Any]) -> bool:
    """The configuration accepts it (a copy from several repetitions, MSH-2... it does not)."""
    try:
        TransformStep.model_validate({"type": "transform", "ops": [op]})
    except ValidationError:
        return False
    return True


def run(fn: Any, msg: Message) -> tuple[str, str]:
    try:
        out = fn(msg)
    except TransformError as exc:
        return ("error", f"{type(exc).__name__}: {exc}")
    return ("text", out.text)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_steps_give_the_reference_output(data: st.DataObject, table: str) -> None:
    d = data.draw(st.sampled_from(DELIMITERS))
    texts = data.draw(st.lists(messages(d), min_size=1, max_size=3))
    ops = [o for o in data.draw(st.lists(operations(table), min_size=1, max_size=6)) if valid(o)]
    assume(ops)
    step = TransformStep.model_validate({"type": "transform", "ops": ops})
    fast, slow = step.build(), reference.build(step)
    for text in texts * 2:  # the second time with warm memos
        msg = Message(text)
        got, want = run(fast, msg), run(slow, msg)
        assert got == want
        out = fast(msg) if got[0] == "text" else None
        if out is not None and out is not msg:  # made of segments, not read again
            again = Message(out.text)
            assert [s.text for s in out.segments] == [s.text for s in again.segments]
            assert [s.name for s in out.segments] == [s.name for s in again.segments]


READ_FORMATS = ("%Y%m%d%H%M%S%z", "%Y%m%d%H%M", "%Y%m%d", "%y%m%d %H:%M:%S.%f", "%Y-%m-%dT%H%%")


@settings(max_examples=600, deadline=None)
@given(
    fmt=st.sampled_from(READ_FORMATS),
    value=st.one_of(
        st.text(alphabet="0123456789+-:.TZt %", max_size=22),
        st.datetimes(min_value=datetime(1000, 1, 1)).map(lambda v: v.strftime("%Y%m%d%H%M%S")),
        st.from_regex(r"\A(19|20)\d\d(0[1-9]|1[0-3])[0-3]\d[0-2]\d[0-6]\d[0-6]\d[+-]\d\d:?\d\d\Z"),
    ),
)
def test_compiled_date_formats_read_as_strptime(fmt: str, value: str) -> None:
    try:
        want: datetime | str = datetime.strptime(value, fmt)
    except ValueError:
        want = "refused"
    try:
        got: datetime | str = date_reader(fmt)(value)
    except ValueError:
        got = "refused"
    assert got == want
    if isinstance(got, datetime) and isinstance(want, datetime):
        assert got.utcoffset() == want.utcoffset()


@pytest.mark.parametrize("fmt", ["%b %d %Y", "%m%d", "%Y%Y", "%j%Y", "%Y%"])
def test_formats_not_compiled_are_left_to_strptime(fmt: str) -> None:
    for value in ("Mar 06 2024", "0306", "20242024", "0662024", "2024%", "x"):
        try:
            want: datetime | str = datetime.strptime(value, fmt)
        except (ValueError, re.error):  # %Y%Y: strptime's regular expression does not compile
            want = "refused"
        try:
            got: datetime | str = date_reader(fmt)(value)
        except (ValueError, re.error):
            got = "refused"
        assert got == want


#: Tricky fields: trailing empty components, repetitions, subcomponents, escapes, empties.
GRID_MESSAGE = "\r".join(
    [
        "MSH|^~\\&|LAB|gb^|DPI|X|20240306101010+0100||ORU^R01|1|P|2.5",
        "PID|1|b^|GB^x^~GR|\\F\\b^GB&hb&^|||a\\X41\\^^",
        "OBX|1|NM|GB^Leuco^L^^|b~|g/dl^^UCUM|20240306^|HB&x^b",
        "OBX|2||X\\S\\Y^^||GB&^~^b||202403061010",
        "ZBE|~|GB",
    ]
)
GRID_OPS: tuple[dict[str, Any], ...] = (
    {"op": "case", "to": "upper"},
    {"op": "truncate", "length": 1},
    {"op": "replace", "pattern": "^g/dl$|b", "with": "Q"},
    {"op": "date", "from": ["%Y%m%d%H%M%S%z", "%Y%m%d%H%M", "%Y%m%d"], "to": "%d/%m/%Y"},
    {"op": "set", "value": "V^W"},
    {"op": "default", "value": "D"},
    {"op": "delete"},
    {"op": "copy", "from": "PID-3"},  # the path is the target ("to")
    {"op": "move", "to": "ZBE-4"},  # the path is the source ("from")
    {"op": "default", "from": "OBX[*]-5"},
)


def grid_paths() -> list[str]:
    return [
        f"{seg}-{field}{rep}{comp}"
        for seg in ("MSH", "PID", "OBX", "OBX[2]", "OBX[*]", "ZBE", "NK1")
        for field in range(3 if seg == "MSH" else 1, 8)
        for rep in ("", "[1]", "[2]", "[*]")
        for comp in ("", ".1", ".2", ".3", ".4", ".1.1", ".1.2")
    ]


@pytest.mark.parametrize("shape", range(len(GRID_OPS) + 3))
def test_every_path_shape_gives_the_reference_output(shape: int, table: str) -> None:
    """Each operation on every kind of place of a message of tricky fields (twice: the second
    time with the memos warm)."""
    msg = Message(GRID_MESSAGE)
    for path in grid_paths():
        if shape < len(GRID_OPS):
            op = GRID_OPS[shape]
            key = "from" if "to" in op else "to" if op["op"] == "copy" else "field"
            op = op | {key: path}
        else:
            unmapped = ("keep", "dead_letter", {"default": "UNK"})[shape - len(GRID_OPS)]
            op = {"op": "map", "field": path, "table": table, "unmapped": unmapped}
        if not valid(op):
            continue
        step = TransformStep.model_validate({"type": "transform", "ops": [op]})
        fast, slow = step.build(), reference.build(step)
        for _ in range(2):
            assert run(fast, msg) == run(slow, msg), path


@pytest.mark.parametrize(
    "msh9", ["ORU^R01^ORU_R01", "ORU", "", "ORU^R01~ADT^A01", "O\\S\\RU^R01", "ADT^A01", "^R01"]
)
@pytest.mark.parametrize(
    "when",
    [
        {"message_types": ["ORU^R01"]},
        {"message_types": ["ORU^*", "ADT^A08"]},
        {"message_types": ["*"]},
        {"message_types": ["O^RU^*"]},
        {"message_types": ["ORU^"]},
        {"sending_facilities": ["CHU-X"], "sending_applications": ["LAB"]},
        {"message_types": ["ADT^*"], "fields": [{"field": "OBX[*]-3.1", "equals": "GB"}]},
    ],
)
def test_compiled_when_tests_as_the_condition(msh9: str, when: dict[str, Any]) -> None:
    text = f"MSH|^~\\&|LAB|CHU-X^1|DPI|X|2024||{msh9}|1|P|2.5\rOBX|1||GB^x\rOBX|2||GR"
    condition = Condition.model_validate(when)
    msg = EditableMessage(Message(text))
    assert compiled(condition)(msg) == condition.test(msg)


@pytest.mark.parametrize(
    ("path", "cached"),
    [
        ("OBX[*]-3", True),
        ("OBR-4", True),
        ("MSH-5", True),
        ("PID-5", False),
        ("NK1-2", False),
        ("OBX[*]-5", False),
        ("NTE-3", False),
        ("ZFD-1", False),
    ],
)
def test_results_are_remembered_outside_patient_values_only(path: str, cached: bool) -> None:
    """Patient segments and free text stay in no memo (a value may name the patient)."""
    assert (_memo(parse_field_path(path)) is not None) == cached


@pytest.mark.parametrize("name", ["MSH", "OBX"])
@pytest.mark.parametrize("number", [3, 4, 6, 9, 12, 20])
def test_a_segment_split_in_part_gives_its_fields_and_its_text(name: str, number: int) -> None:
    text = GRID_MESSAGE.split("\r")[0 if name == "MSH" else 2]
    msg = EditableMessage(Message(GRID_MESSAGE))
    seg = msg.named(name)[0]
    seps = msg.separators
    part = list(seg.fields_upto(seps, number))
    whole = EditableMessage(Message(GRID_MESSAGE)).named(name)[0].fields(seps)
    assert part[: number + 1] == whole[: number + 1]
    if number + 2 < len(whole):
        assert len(part) < len(whole)  # the rest is left unsplit
    assert seps.field.join(part[:1] + part[2:] if name == "MSH" else part) == text
    assert seg.fields(seps) == whole
