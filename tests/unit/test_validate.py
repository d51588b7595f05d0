"""The `validate` step: hl7apy structural validation, for channels that ask for it."""

from __future__ import annotations

import pytest

from engine.errors import ValidationError
from engine.transforms.validate import validate_structure
from tests.sample_files import SAMPLES

ADT = (
    "MSH|^~\\&|GAM|CHU|DPI|CHU|20240306111154||ADT^A01^ADT_A01|1|P|2.5\r"
    "EVN|A01|20240306111154\r"
    "PID|1||123^^^CHU^PI||DOE^JANE||19800101|F\r"
    "PV1|1|I\r"
)


def test_a_well_formed_admission_passes_both_profiles() -> None:
    validate_structure(ADT, "hl7apy_tolerant")
    validate_structure(ADT, "hl7apy_strict")


def test_lf_separated_text_is_validated_whole_not_as_a_lone_msh() -> None:
    # hl7apy alone would keep only MSH from LF-separated text and pass anything.
    broken = ADT.replace("PV1|1|I", "PV1|1|I|" + "x|" * 60).replace("\r", "\n")
    with pytest.raises(ValidationError):
        validate_structure(broken, "hl7apy_strict")


@pytest.mark.parametrize("profile", ["hl7apy_tolerant", "hl7apy_strict"])
def test_a_missing_required_segment_fails_with_a_reason(profile: str) -> None:
    without_pid = ADT.replace("PID|1||123^^^CHU^PI||DOE^JANE||19800101|F\r", "")
    with pytest.raises(ValidationError) as caught:
        validate_structure(without_pid, profile)
    assert caught.value.code == "invalid_message"
    assert "PID" in caught.value.reason


def test_a_bad_date_fails_strict_validation_only() -> None:
    bad_date = ADT.replace("19800101", "1980AB01")
    validate_structure(bad_date, "hl7apy_tolerant")
    with pytest.raises(ValidationError, match="1980AB01"):
        validate_structure(bad_date, "hl7apy_strict")


def test_the_french_admission_sample_passes_tolerant_validation() -> None:
    text = (SAMPLES / "fr-ans" / "adt_a01_sgl.hl7").read_text(encoding="utf-8")
    validate_structure(text, "hl7apy_tolerant")


def test_hl7apy_findings_on_a_real_sample_are_reported_not_raised_as_crashes() -> None:
    text = (SAMPLES / "python-hl7" / "sample_hl7.hl7").read_text(encoding="utf-8")
    with pytest.raises(ValidationError, match="OBR_15"):
        validate_structure(text, "hl7apy_tolerant")
