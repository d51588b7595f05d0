"""The pipeline's share of the writer thread while intake keeps it busy (``engine.pipeline:
thread``).

Intake goes first (its senders wait for their ACK), but under sustained intake a pipeline that
only gets what intake leaves falls behind without bound: on the 2-core VM it delivered about
190 msg/s while intake took 2,284 msg/s for minutes (``bench/RESULTS.md``). So the writer
counts the time it spends on each while the pipeline has work, and while the pipeline has had
less than ``share`` of it, the pipeline is *owed* time: the writer does not defer it, so a
slice (``MIN_SLICE`` messages when intake waits: an ACK waits behind one short slice at most)
follows each intake commit until the debt is paid. A pipeline that runs out of work owes and
is owed nothing. The counts decay (halved once they pass ``HORIZON`` seconds together), so the
share holds over the last second or so, not since the start.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds of writer time remembered: beyond it, both counts are halved.
HORIZON = 1.0


@dataclass(slots=True)
class PipelineShare:
    """Writer time spent on intake commits and on pipeline slices since the pipeline last ran
    out of work. ``share`` 0: the pipeline gets only what intake leaves."""

    share: float
    intake: float = 0.0
    pipeline: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.share < 1.0:
            raise ValueError(f"pipeline share {self.share} is not in [0, 1)")

    def spent_on_intake(self, seconds: float) -> None:
        self.intake += seconds
        self._decay()

    def spent_on_pipeline(self, seconds: float, handled: int) -> None:
        if handled == 0:  # no backlog: nothing owed either way
            self.intake = self.pipeline = 0.0
            return
        self.pipeline += seconds
        self._decay()

    def owed(self) -> bool:
        """Whether the pipeline has had less than its share of the time counted."""
        total = self.intake + self.pipeline
        return total > 0 and self.pipeline < self.share * total

    def _decay(self) -> None:
        if self.intake + self.pipeline > HORIZON:
            self.intake /= 2
            self.pipeline /= 2
