"""What the journal keys payloads by: the content digest of a resend, the patient key of a
document received alone, and where a channel's messages go by default."""

from __future__ import annotations

import pytest

from engine.channels.loader import parse_channels
from engine.intake.rules import DocumentRules
from engine.journal.records import content_digest
from tests.sample_files import CDA_SAMPLES

MSG = b"MSH|^~\\&|LAB|H|AIG|H|{ts}||ORU^R01|C1|P|2.5\rPID|1||IPP1^^^H^PI"


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf", b"\r\n", b" "])
def test_a_resend_with_a_new_msh_7_has_the_same_digest_whatever_precedes_msh(
    prefix: bytes,
) -> None:
    first = content_digest(MSG.replace(b"{ts}", b"20240101101010"))
    resent = content_digest(prefix + MSG.replace(b"{ts}", b"20240101101515"))
    assert resent == first
    assert content_digest(MSG.replace(b"C1", b"C2")) != first  # other content, other digest


def test_a_document_with_only_an_ins_is_keyed_by_its_ins() -> None:
    sample = CDA_SAMPLES / "VAC_2023.01.xml"  # in the shared corpus and in tests/samples
    intake = DocumentRules("docs", ("CDA^*",), "UNICODE UTF-8")
    row = intake.prepare(sample.read_bytes()).row
    assert row.error_code is None
    # recordTarget/patientRole/id of the sample: the INS, with the test OID, and no IPP.
    assert row.patient_key == "279035121518989^1.2.250.1.213.1.4.10"


def test_by_default_a_message_goes_everywhere_but_to_its_business_ack_carrier() -> None:
    config = parse_channels(
        """
channels:
  - name: docs
    source: {type: mllp, port: 2575}
    accept: ["MDM^*"]
    destinations:
      store: {type: record_store}
      archive: {type: file, directory: /tmp/archive}
      lab: {type: mllp, host: 127.0.0.1, port: 6661}
    business_ack: {send_to: [lab]}
"""
    )
    [route] = config.channels[0].effective_routes()
    assert route.to == ("store", "archive")
