"""The regression mechanism itself: a saved failing input is replayed as an explicit example."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import strategies as st

from tests.fuzz import harness


def test_a_saved_input_is_written_once_and_read_back_as_the_same_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "REGRESSIONS", tmp_path)
    case = (b"\x0bMSH\r\xff", "é\r", (1, 2))
    assert harness.save_regressions("t", [case, case]) == [ascii(case)]
    assert harness.save_regressions("t", [case]) == []
    assert (tmp_path / "t.txt").read_text(encoding="ascii").count("\n") == 1
    assert harness.load_regressions("t") == [case]


def test_every_saved_input_is_replayed_whatever_the_strategy_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "REGRESSIONS", tmp_path)
    (tmp_path / "t.txt").write_text("# comment\nb'saved one'\n\nb'saved two'\n", encoding="ascii")
    seen: list[bytes] = []

    @harness.fuzz_target("t", st.just(b"drawn"))
    def target(case: bytes) -> None:
        seen.append(case)

    target()
    assert seen[:2] == [b"saved one", b"saved two"]
    assert b"drawn" in seen


def test_the_minimal_failing_input_is_kept_for_the_long_profile_to_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "REGRESSIONS", tmp_path)

    @harness.fuzz_target("t", st.binary(min_size=1, max_size=50))
    def target(case: bytes) -> None:
        assert b"\x1c" not in case

    with pytest.raises(AssertionError):
        target()
    assert list(target.fuzz_failures.values()) == [b"\x1c"]  # type: ignore[attr-defined]
