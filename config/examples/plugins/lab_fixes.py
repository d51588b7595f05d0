"""Python steps for the lab-to-LOINC example channel (lab_loinc.channels.yaml)."""

from __future__ import annotations

from engine.transforms.user.message_api import HL7Message

#: UCUM spells units with case: senders often do not.
UNITS = {"mg/dl": "mg/dL", "g/dl": "g/dL", "mmol/l": "mmol/L", "10*9/l": "10*9/L"}


def normalise_units(msg: HL7Message) -> None:
    """Write each OBX unit (OBX-6.1) as UCUM spells it, and say so in OBX-6.3."""
    for obx in msg.segments("OBX"):
        unit = obx.get("6.1")
        fixed = UNITS.get(unit.lower())
        if fixed is not None and fixed != unit:
            obx.set("6.1", fixed)
            obx.set("6.3", "UCUM")
