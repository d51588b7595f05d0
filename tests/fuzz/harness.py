"""Fuzz targets: two Hypothesis profiles and the regression files every run replays.

``AIGUILLAGE_FUZZ=long`` (``make fuzz``) selects the long profile: many examples, random
seeds, Hypothesis's example database under ``tests/fuzz/.hypothesis-fuzz``, and each minimal
failing input appended to ``tests/fuzz/regressions/<target>.txt``. Any other value (``make
test``) is the bounded, derandomized profile CI runs. Either way, every line of a target's
regression file is replayed first as an explicit example.
"""

from __future__ import annotations

import ast
import os
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, example, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.strategies import SearchStrategy

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE / "regressions"
LONG = os.environ.get("AIGUILLAGE_FUZZ", "") == "long"

#: Inputs here are whole messages mutated, up to 1 MB (the 820 KB sample, "huge field"
#: mutations): Hypothesis's generation-size and speed checks are meant for small generated
#: values and would fail on the very inputs the fuzz targets exist for.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "fuzz-ci",
    max_examples=int(os.environ.get("AIGUILLAGE_FUZZ_EXAMPLES", "200")),
    deadline=None,  # a parse of the 820 KB sample takes tens of ms: timing is not the property
    derandomize=True,  # the same examples on every run: CI is deterministic
    database=None,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)
settings.register_profile(
    "fuzz-long",
    max_examples=int(os.environ.get("AIGUILLAGE_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(HERE / ".hypothesis-fuzz"),
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)


def profile(scale: float = 1.0) -> settings:
    """The profile in force; ``scale`` shrinks the example count of a costly target."""
    base = settings.get_profile("fuzz-long" if LONG else "fuzz-ci")
    return settings(base, max_examples=max(1, int(base.max_examples * scale)))


def load_regressions(target: str) -> list[Any]:
    """The saved failing inputs of a target: one Python literal a line, ``#`` for comments."""
    path = REGRESSIONS / f"{target}.txt"
    if not path.exists():
        return []
    lines = path.read_text(encoding="ascii").splitlines()
    return [ast.literal_eval(line) for line in lines if line.strip() and not line.startswith("#")]


def save_regressions(target: str, cases: Iterable[object]) -> list[str]:
    """Append the cases not saved yet to the target's file; returns the lines written."""
    path = REGRESSIONS / f"{target}.txt"
    known = set(path.read_text(encoding="ascii").splitlines()) if path.exists() else set()
    added = []
    for case in cases:
        line = ascii(case)  # ascii(): one line, and bytes or text of any kind survive the file
        if ast.literal_eval(line) != case:
            raise ValueError(f"a {type(case).__name__} case cannot be saved as a literal")
        if line not in known:
            known.add(line)
            added.append(line)
    if added:
        REGRESSIONS.mkdir(exist_ok=True)
        with path.open("a", encoding="ascii") as out:
            out.writelines(f"{line}\n" for line in added)
    return added


def _origin(exc: BaseException) -> tuple[str, str, int]:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return type(exc).__name__, frame.filename, frame.lineno or 0


def fuzz_target(
    target: str, strategy: SearchStrategy[T], *, scale: float = 1.0
) -> Callable[[Callable[[T], None]], Callable[..., None]]:
    """Turn ``test(case)`` into a Hypothesis test named ``target``: its saved regressions
    replayed first, then ``strategy`` under the profile in force.

    The last failing case of each distinct failure (exception type and line) is kept on the
    test as ``fuzz_failures``: Hypothesis replays the minimal example last, so that is the
    one the conftest hook saves when the long profile fails.
    """

    def decorate(test: Callable[[T], None]) -> Callable[..., None]:
        failures: dict[tuple[str, str, int], T] = {}

        def run(case: T) -> None:
            try:
                test(case)
            except BaseException as exc:
                failures[_origin(exc)] = case
                raise

        run.__name__ = run.__qualname__ = test.__name__
        run.__doc__, run.__module__ = test.__doc__, test.__module__
        wrapped: Callable[..., None] = given(case=strategy)(run)
        for case in reversed(load_regressions(target)):
            wrapped = example(case=case)(wrapped)
        wrapped = profile(scale)(wrapped)
        wrapped.fuzz_target = target  # type: ignore[attr-defined]
        wrapped.fuzz_failures = failures  # type: ignore[attr-defined]
        return wrapped

    return decorate
