"""The identify stage: for each record-store target, the patient its operation is filed under,
by the INS rules (:mod:`engine.pipeline.identify`). A message whose patient is not certain
stops here: held until an ADT makes it known (902) or sent to identity review, never filed."""

from __future__ import annotations

from engine.pipeline.delivery import Filed, RecordRules
from engine.pipeline.identify.operation import identify_patient
from engine.pipeline.identify.patient_filing import Filing
from engine.pipeline.stages import Work


class Identify:
    name = "identify"

    def __init__(self, targets: dict[str, RecordRules]) -> None:
        self.filings = {name: Filing(rules.policy) for name, rules in targets.items()}

    def run(self, work: Work) -> None:
        for name, op in work.operations.items():
            patient_id = identify_patient(
                work.conn, self.filings[name], work.pending.id, op, work.now
            )
            work.filed[name] = Filed(op, patient_id)
