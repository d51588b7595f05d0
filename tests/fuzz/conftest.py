"""Fuzz runs: in the long profile, a failing target's minimal inputs become regression cases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import LONG, save_regressions


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    target = getattr(getattr(item, "function", None), "fuzz_target", None)
    if not (LONG and target and report.when == "call" and report.failed):
        return
    failures = item.function.fuzz_failures  # type: ignore[attr-defined]
    added = save_regressions(target, failures.values())
    if added:
        report.sections.append(
            ("fuzz", f"{len(added)} failing input(s) saved to tests/fuzz/regressions/{target}.txt")
        )
