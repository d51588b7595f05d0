"""bench/stage_profile.py's bookkeeping: exclusive times of nested sections, their medians and
shares per message, and the labels of stages sharing a name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def sp() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("stage_profile", BENCH / "stage_profile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stage_profile"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sections(sp: ModuleType) -> tuple[Any, FakeClock, FakeClock]:
    cpu, wall = FakeClock(), FakeClock()
    return sp.Sections(cpu, wall), cpu, wall


def test_a_nested_section_is_charged_to_itself_only(sp: ModuleType) -> None:
    s, cpu, wall = sections(sp)
    with s.section("other"):
        cpu.now, wall.now = 1.0, 2.0
        with s.section("parse"):
            cpu.now, wall.now = 4.0, 10.0
            with s.section("flush"):
                cpu.now, wall.now = 6.0, 11.0
            cpu.now, wall.now = 7.0, 13.0
        cpu.now, wall.now = 7.5, 14.0
    assert dict(s.cpu) == {"other": 1.5, "parse": 4.0, "flush": 2.0}
    assert dict(s.wall) == {"other": 3.0, "parse": 10.0, "flush": 1.0}
    assert s.calls == {"other": 1, "parse": 1, "flush": 1}


def test_a_wrapped_method_keeps_its_self_and_is_charged_when_it_raises(sp: ModuleType) -> None:
    s, cpu, _ = sections(sp)

    class Thing:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def work(self, n: int) -> int:
            cpu.now += n
            self.seen.append(n)
            if n < 0:
                raise ValueError
            return n * 2

    Thing.work = s.wrap("work", Thing.work)  # type: ignore[method-assign]
    thing = Thing()
    with s.section("other"):
        assert thing.work(3) == 6
        with pytest.raises(ValueError):
            thing.work(-1)  # the clock went back by one: charged all the same
    assert thing.seen == [3, -1]
    assert s.cpu["work"] == 2.0
    assert s.calls["work"] == 2


def test_summary_gives_medians_per_message_and_shares_with_other_last(sp: ModuleType) -> None:
    runs = []
    for scale in (1.0, 2.0, 3.0):
        s, _, _ = sections(sp)
        s.cpu.update({"other": 0.1 * scale, "deliver": 0.3 * scale, "parse": 0.1 * scale})
        s.wall.update({"other": 0.2, "deliver": 0.6, "parse": 0.2})
        s.calls.update({"other": 10, "deliver": 100, "parse": 100, "extra": 0})
        runs.append(sp.Run(s, 100))
    out = sp.summarise(runs, ["claim", "parse", "deliver"])
    assert list(out["stages"]) == ["parse", "deliver", "extra", "other"]  # no claim: never ran
    assert out["stages"]["deliver"] == {
        "cpu_us_per_msg": 6000.0,  # the median run: 0.6 s over 100 messages
        "wall_us_per_msg": 6000.0,
        "cpu_share": 0.6,
        "calls_per_msg": 1.0,
    }
    assert out["stages"]["other"]["calls_per_msg"] == 0.1
    assert out["total"]["cpu_us_per_msg"] == 10000.0
    assert out["total"]["msg_per_cpu_second"] == 100.0


def test_stages_sharing_a_name_are_told_apart_by_their_class(sp: ModuleType) -> None:
    class Step:
        name = "transform"

    class MapForStore:
        name = "transform"

    class Route:
        name = "route"

    labels = sp.stage_labels([Step(), Route(), MapForStore()])
    assert labels == ["transform:Step", "route", "transform:MapForStore"]
