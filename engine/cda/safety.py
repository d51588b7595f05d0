"""The check a document sender hears about in its ACK: every CDA the message carries is
screened (:mod:`engine.cda.screen`): valid Base64, XML with a ClinicalDocument root, no DOCTYPE,
within the size and depth limits. Only the prolog and header are decoded and read; a failure is
an ``AR`` naming the OBX. Well-formedness of the rest, the schema, the CI-SIS header rules and
the identity are the pipeline's (a dead letter there)."""

from __future__ import annotations

from engine.cda.screen import screen_chunks
from engine.errors import DocumentError
from engine.hl7v2.embedded_documents import carried_data, carries_documents
from engine.hl7v2.reader import Message


def check_carried_documents(msg: Message) -> None:
    """Raises DocumentError when a CDA of ``msg`` could hurt the engine or is not a CDA."""
    if not carries_documents(msg):
        return
    for carried in carried_data(msg):
        try:
            screen_chunks(carried.pieces(), carried.decoded_size(), need_header=False)
        except DocumentError as exc:
            reason = f"the CDA of OBX {carried.obx or '?'}: {exc.reason}"
        else:
            continue
        # Raised outside the handler, unchained: the first error's traceback (the parsing
        # frames) would otherwise ride along with this one for as long as it is kept.
        raise DocumentError(reason)
