"""Where the sample files are: the shared corpus when mounted, else the copies in tests/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "samples" / "hl7v2"
COPIES = REPO / "tests" / "samples" / "hl7v2"

#: Every file of the shared corpus when it is there; otherwise the copies kept in tests/.
SAMPLES = SHARED if SHARED.is_dir() else COPIES

CDA_SHARED = REPO.parent / "shared" / "samples" / "cda" / "fr-cisis"
CDA_COPIES = REPO / "tests" / "samples" / "cda" / "fr-cisis"
#: Every CI-SIS CDA of the shared corpus when it is there; otherwise the copies kept in tests/.
CDA_SAMPLES = CDA_SHARED if CDA_SHARED.is_dir() else CDA_COPIES
