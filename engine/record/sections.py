"""The record as the DMP shows it: spaces and rubriques, newest first (DOMAIN.md §6).

Categories come from the document type codes (CI-SIS LOINC codes and the ``SYNTH``/``REMB``
codes of 1.2.250.1.213.1.1.4.12); a code not listed here is a report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

SUMMARY, TREATMENTS, REPORTS, IMAGING, BIOLOGY = (
    "summary",
    "treatments",
    "reports",
    "imaging",
    "biology",
)
PREVENTION, CERTIFICATES, REIMBURSEMENTS = "prevention", "certificates", "reimbursements"

#: Rubriques of the medical space in the order the DMP shows them (hopital.fr "Mode d'emploi").
MEDICAL = (SUMMARY, TREATMENTS, REPORTS, IMAGING, BIOLOGY, CERTIFICATES)

CATEGORY_OF_TYPE: dict[str, str] = {
    "SYNTH": SUMMARY,  # VSM
    "60591-5": SUMMARY,  # IPS-FR (patient summary)
    "11502-2": BIOLOGY,  # CR-BIO
    "96173-0": BIOLOGY,  # TROD result
    "18748-4": IMAGING,  # CR-IMG
    "57833-6": TREATMENTS,  # prescription for medication
    "57832-8": TREATMENTS,  # prescription for a device
    "11369-6": PREVENTION,  # vaccination history
    "87273-9": PREVENTION,  # vaccination note
    "29274-8": CERTIFICATES,  # child health certificate (CSE)
    "REMB": REIMBURSEMENTS,  # CNAM-HR
}

#: The DMP shows the reimbursements of the last 24 months.
REIMBURSEMENT_WINDOW = timedelta(days=730)


def category(type_code: str) -> str:
    return CATEGORY_OF_TYPE.get(type_code, REPORTS)


def arrange(
    documents: Iterable[dict[str, Any]],
    reimbursements: Iterable[dict[str, Any]],
    vaccinations: Iterable[dict[str, Any]],
    personal: Iterable[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The four spaces from visible rows already sorted newest first."""
    medical: dict[str, list[dict[str, Any]]] = {name: [] for name in MEDICAL}
    prevention: list[dict[str, Any]] = []
    reimbursement_documents: list[dict[str, Any]] = []
    for doc in documents:
        kind = category(doc["type_code"])
        if kind == PREVENTION:
            prevention.append(doc)
        elif kind == REIMBURSEMENTS:
            reimbursement_documents.append(doc)
        else:
            medical[kind].append(doc)
    cutoff = (now - REIMBURSEMENT_WINDOW).strftime("%Y%m%d")
    recent = [r for r in reimbursements if not r["date"] or r["date"][:8] >= cutoff]
    return {
        "medical": medical,
        "reimbursements": {"documents": reimbursement_documents, "items": recent},
        "prevention": {"documents": prevention, "vaccinations": list(vaccinations)},
        "personal": list(personal),
    }
