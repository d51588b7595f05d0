"""The pipeline's share of the writer thread (``engine.pipeline_share``): what it is owed."""

from __future__ import annotations

import pytest

from engine.pipeline.share import HORIZON, PipelineShare


def test_nothing_is_owed_before_any_time_is_counted() -> None:
    assert not PipelineShare(0.5).owed()


def test_the_pipeline_is_owed_time_until_it_has_had_its_share() -> None:
    share = PipelineShare(0.5)
    share.spent_on_intake(0.010)
    assert share.owed()
    share.spent_on_pipeline(0.004, handled=8)
    assert share.owed()  # 4 of 14 ms
    share.spent_on_pipeline(0.006, handled=8)
    assert not share.owed()  # 10 of 20 ms


def test_a_share_of_zero_never_owes_the_pipeline_anything() -> None:
    share = PipelineShare(0.0)
    share.spent_on_intake(0.5)
    assert not share.owed()


def test_a_pipeline_out_of_work_is_owed_nothing_afterwards() -> None:
    share = PipelineShare(0.5)
    share.spent_on_intake(0.2)
    share.spent_on_pipeline(0.001, handled=0)
    assert not share.owed()
    assert share.intake == share.pipeline == 0.0


def test_old_time_decays_so_a_long_starvation_is_not_repaid_at_once() -> None:
    share = PipelineShare(0.5)
    share.spent_on_intake(HORIZON * 3)
    assert share.intake <= HORIZON * 1.5
    share.spent_on_pipeline(HORIZON / 2, handled=64)
    assert share.intake + share.pipeline <= HORIZON * 2


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_a_share_outside_zero_to_one_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="pipeline share"):
        PipelineShare(bad)
