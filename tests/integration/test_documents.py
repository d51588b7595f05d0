"""CDA documents over MLLP (python-hl7's client) into the record store, on SQLite and
PostgreSQL: storage with metadata, lifecycle, idempotency, identity checks, unsafe XML."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from tests.integration.identity_harness import IdentityEngine, adt, msh, pid
from tests.sample_files import CDA_SAMPLES, SAMPLES

INS = "279035121518989"  # the ANS test patient of the CI-SIS samples
TSH = CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml"
PATIENT = pid("IPP1", INS)
MASKING = {"MASQUE_PS": "Y", "INVISIBLE_PATIENT": "N", "INVISIBLE_REP_LEGAUX": "Y"}


@pytest.fixture
def engine(store_url: str) -> Iterator[IdentityEngine]:
    running = IdentityEngine(store_url, accept=("ADT^*", "ORU^R01", "MDM^*"))
    yield running
    running.stop()


def mdm(
    trigger: str, cda: bytes, control_id: str, pid_segment: str = PATIENT, txa12: str = ""
) -> str:
    """An MDM carrying ``cda`` base64-encoded in OBX 1, with MetaDMPMSS masking flags."""
    data = base64.b64encode(cda).decode()
    segments = [
        msh(f"MDM^{trigger}^MDM_T02", control_id),
        "EVN||20240306111154",
        pid_segment,
        f"TXA|1|11502-2|TEXT|20240306111154||||||||{txa12}",
        f"OBX|1|ED|11502-2^CR d'examens biologiques^LN||^text^XML^Base64^{data}||||||F",
    ]
    for n, (code, value) in enumerate(MASKING.items(), start=2):
        segments.append(f"OBX|{n}|CWE|{code}^{code}^MetaDMPMSS||{value}||||||F")
    return "\r".join(segments)


def documents(engine: IdentityEngine) -> list[tuple[object, ...]]:
    return engine.rows("SELECT document_id, version, status FROM store_documents ORDER BY id")


def test_a_lab_report_in_an_mdm_is_stored_with_its_metadata_and_bytes(
    engine: IdentityEngine,
) -> None:
    cda = TSH.read_bytes()
    assert engine.send(adt("A28", PATIENT, "1"), mdm("T02", cda, "2")) == ["AA", "AA"]
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]
    [row] = engine.rows(
        "SELECT d.patient_id, d.document_id, d.set_id, d.version, d.type_code, d.title, "
        "d.author_name, d.facility, d.level, d.confidentiality, d.masked_ps, "
        "d.invisible_patient, d.invisible_legal_reps, d.status, d.sha256, d.content "
        "FROM store_documents d"
    )
    assert row[0] == engine.patient("IPP1")["id"]
    # Header values as the file writes them (see tests/unit/test_cda_header.py).
    assert row[1:10] == (
        "1.2.250.1.213.1.1.1.55.2024.9.1",
        "1.2.250.1.213.1.1.1.55.2024.9",
        1,
        "11502-2",
        "Compte rendu d'examens biologiques",
        "Marcel CAMPARINI",
        "Laboratoire des charmes",
        "N3",
        "N",
    )
    assert [bool(v) for v in row[10:13]] == [True, False, True]  # MetaDMPMSS flags
    assert row[13] == "current"
    assert (row[14], bytes(row[15])) == (hashlib.sha256(cda).hexdigest(), cda)


def test_a_resent_or_replayed_document_is_stored_once(engine: IdentityEngine) -> None:
    cda = TSH.read_bytes()
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", cda, "2"), mdm("T02", cda, "3"))
    assert engine.states()[1:] == [("2", "delivered"), ("3", "delivered")]
    assert len(documents(engine)) == 1


def test_a_new_content_under_a_stored_id_and_version_is_refused(engine: IdentityEngine) -> None:
    cda = TSH.read_bytes()
    changed = cda.replace(b"Laboratoire des charmes", "Laboratoire des chênes".encode())
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", cda, "2"), mdm("T02", changed, "3"))
    assert engine.rows("SELECT state, error_code FROM journal_messages WHERE control_id = '3'") == [
        ("dead_lettered", "invalid_document")
    ]


def test_a_document_for_an_unknown_patient_is_held_until_its_admission(
    engine: IdentityEngine,
) -> None:
    engine.send(mdm("T02", TSH.read_bytes(), "1"))
    assert engine.states() == [("1", "held")]
    engine.send(adt("A28", PATIENT, "2"))
    assert engine.states() == [("1", "delivered"), ("2", "delivered")]
    assert len(documents(engine)) == 1


def test_a_document_whose_record_target_is_another_ins_goes_to_review(
    engine: IdentityEngine,
) -> None:
    other = pid("IPP2", "185057512300143", name="MARTIN", given="PAUL", dob="19850505", sex="M")
    engine.send(adt("A28", other, "1"), mdm("T02", TSH.read_bytes(), "2", pid_segment=other))
    assert engine.rows("SELECT state, error_code FROM journal_messages WHERE control_id = '2'") == [
        ("review", "904")
    ]
    assert documents(engine) == []


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol3;</title></ClinicalDocument>"""


def test_an_xml_bomb_is_a_dead_letter_and_the_engine_goes_on(engine: IdentityEngine) -> None:
    acks = engine.send(
        adt("A28", PATIENT, "1"), mdm("T02", BOMB, "2"), mdm("T02", TSH.read_bytes(), "3")
    )
    assert acks == ["AA", "AR", "AA"]  # refused in the ACK, before anything else
    assert engine.states() == [("1", "delivered"), ("2", "dead_lettered"), ("3", "delivered")]
    [(code, reason)] = engine.rows(
        "SELECT error_code, error_reason FROM journal_messages WHERE control_id = '2'"
    )
    assert code == "invalid_document"
    assert "DOCTYPE is not allowed" in str(reason)


def test_a_cda_broken_past_its_header_is_accepted_then_dead_lettered_by_the_pipeline(
    engine: IdentityEngine,
) -> None:
    """Intake only screens a document (issue 11): a CDA whose body is not well-formed is safe
    to keep, so it is acknowledged; the pipeline, which parses it, refuses it with the line."""
    broken = TSH.read_bytes().replace(b"</section>", b"</sectio>", 1)
    broken = broken.replace(b"2024.9.1", b"2024.9.5")
    acks = engine.send(
        adt("A28", PATIENT, "1"), mdm("T02", broken, "2"), mdm("T02", TSH.read_bytes(), "3")
    )
    assert acks == ["AA", "AA", "AA"]
    assert engine.states() == [("1", "delivered"), ("2", "dead_lettered"), ("3", "delivered")]
    [(stage, code, reason)] = engine.rows(
        "SELECT error_stage, error_code, error_reason FROM journal_messages WHERE control_id = '2'"
    )
    assert (stage, code) == ("transform", "invalid_document")
    assert reason == "the CDA of OBX 1: the document is not well-formed XML (line 675)"
    assert documents(engine) == [("1.2.250.1.213.1.1.1.55.2024.9.1", 1, "current")]


def test_the_ans_samples_initial_replace_delete_leave_one_superseded_and_one_deleted(
    engine: IdentityEngine,
) -> None:
    names = ("mdm_t02_cda_base64.hl7", "mdm_t10_replace_base64.hl7", "mdm_t04_delete_base64.hl7")
    files = [SAMPLES / "fr-ans" / n for n in names]
    if not all(f.exists() for f in files):
        pytest.skip("the ANS MDM samples are absent (../shared/samples not mounted)")
    admission = (SAMPLES / "fr-ans" / "adt_a01_sgl.hl7").read_text(encoding="utf-8")
    # The three files share MSH-10 015: as one sender's messages they need their own ids.
    texts = [f.read_text(encoding="utf-8") for f in files]
    engine.send(admission, *(t.replace("|015|", f"|10{n}|") for n, t in enumerate(texts)))
    assert [s for _, s in engine.states()] == ["delivered"] * 4
    radio = "1.2.250.1.71.4.2.2.120456789.7102400008"
    assert documents(engine) == [(f"{radio}1", 1, "superseded"), (f"{radio}2", 2, "deleted")]
    # Replaying the whole sequence changes nothing.
    engine.send(*(t.replace("|015|", f"|20{n}|") for n, t in enumerate(texts)))
    assert documents(engine) == [(f"{radio}1", 1, "superseded"), (f"{radio}2", 2, "deleted")]


def test_patient_show_lists_the_current_documents_and_hides_deleted_ones(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"))
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", engine.url)
    shown = CliRunner().invoke(app, ["patient", "show", INS, "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert (record["ins"], record["birth_name"]) == (INS, "PAT-TROIS")
    assert [(d["title"], d["status"]) for d in record["documents"]] == [
        ("Compte rendu d'examens biologiques", "current")
    ]
    text = CliRunner().invoke(app, ["patient", "show", INS]).stdout
    assert "11502-2" in text and "2021-04-01" in text and "Documents" in text
    engine.send(mdm("T04", TSH.read_bytes(), "3"))
    assert (
        json.loads(CliRunner().invoke(app, ["patient", "show", INS, "--json"]).stdout)["documents"]
        == []
    )
    missing = CliRunner().invoke(app, ["patient", "show", "185057512300143"])
    assert missing.exit_code == 1
    assert "no patient has the INS" in missing.stderr


#: What becomes of each ANS message carrying a CDA, sent after the admission of the test
#: patient, in file-name order (so the deletion T04 overtakes its replacement T10).
ANS_OUTCOMES = {
    "mdm_t02_cda_base64": ("delivered", None),
    # OBX 1 holds the text "Document medcial au format CDA niveau 1", not a CDA.
    "mdm_t02_cda_ref": ("dead_lettered", "invalid_document"),
    # Their OBX 1 holds a truncated CDA (refused in the ACK, AR), and PID-3's INS
    # 276037510669380 has a wrong key (the right one would be 26): so has the next one's.
    "mdm_t02_lps_mss": ("dead_lettered", "invalid_document"),
    "mdm_t02_lps_mss_base64": ("dead_lettered", "invalid_ins"),
    "mdm_t02_v12": ("dead_lettered", "invalid_document"),
    "mdm_t04_delete_base64": ("delivered", None),
    "mdm_t10_replace_base64": ("delivered", None),
    "oru_r01_cda_bio_base64": ("delivered", None),
    "oru_r01_cda_refs": ("dead_lettered", "invalid_document"),
    # PID-3 names the test patient, the two CDAs recordTarget 277076322082910.
    "oru_r01_two_cda_base64_820kb": ("review", "904"),
}


def test_every_ans_message_with_a_cda_is_stored_or_refused_with_a_named_reason(
    engine: IdentityEngine,
) -> None:
    fr_ans = SAMPLES / "fr-ans"
    if not (fr_ans / "oru_r01_two_cda_base64_820kb.hl7").exists():
        pytest.skip("the ANS samples are absent (../shared/samples not mounted)")
    engine.send((fr_ans / "adt_a01_sgl.hl7").read_text(encoding="utf-8"))
    for name in ANS_OUTCOMES:
        text = (fr_ans / f"{name}.hl7").read_text(encoding="utf-8")
        engine.send(text.replace("|015|", f"|{name}|"))  # the files share MSH-10 015
    rows = engine.rows(
        "SELECT control_id, state, error_code, error_reason FROM journal_messages "
        "WHERE message_type <> 'ADT' ORDER BY id"
    )
    assert {r[0]: (r[1], r[2]) for r in rows} == ANS_OUTCOMES
    assert all(r[3] for r in rows if r[1] != "delivered"), "every refusal names its reason"
    assert documents(engine) == [
        ("1.2.250.1.71.4.2.2.120456789.71024000081", 1, "superseded"),
        ("1.2.250.1.71.4.2.2.120456789.71024000082", 2, "deleted"),
        ("1.2.250.1.213.1.1.9", 1, "current"),
    ]


def test_level_3_documents_give_their_entries_to_the_patients_summary(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    vsm, remb = CDA_SAMPLES / "VSM_1.4_2022.01.xml", CDA_SAMPLES / "CNAM-HR_2021.01.xml"
    engine.send(
        adt("A28", PATIENT, "1"),
        mdm("T02", TSH.read_bytes(), "2"),
        mdm("T02", vsm.read_bytes(), "3"),
        mdm("T02", remb.read_bytes(), "4"),
    )
    assert [s for _, s in engine.states()] == ["delivered"] * 4
    # Counts read from the files (see tests/unit/test_cda_extract.py): 2 lab results in the
    # TSH report, 11 summary entries in the VSM, 25 claims in the CNAM-HR history.
    assert engine.rows(
        "SELECT count(*) FROM store_observations WHERE document_row IS NOT NULL"
    ) == [(2,)]
    kinds = engine.rows("SELECT kind, count(*) FROM store_summary_entries GROUP BY kind")
    assert sorted(kinds) == [("allergy", 1), ("problem", 2), ("risk_factor", 6), ("treatment", 2)]
    assert engine.rows("SELECT count(*) FROM store_reimbursements") == [(25,)]
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", engine.url)
    record = json.loads(CliRunner().invoke(app, ["patient", "show", INS, "--json"]).stdout)
    assert len(record["summary"]) == 11 and len(record["reimbursements"]) == 25
    assert {r["code"] for r in record["results"]} >= {"3016-3"}  # TSH, from the lab report
    # Deleting the VSM hides what it said.
    engine.send(mdm("T04", vsm.read_bytes(), "5"))
    record = json.loads(CliRunner().invoke(app, ["patient", "show", INS, "--json"]).stdout)
    assert record["summary"] == []


def test_a_channel_checking_documents_refuses_one_without_set_id_naming_line_and_rule(
    tmp_path: Path,
) -> None:
    checked = IdentityEngine(
        f"sqlite:///{tmp_path / 'checked.db'}",
        accept=("ADT^*", "MDM^*"),
        documents="{xsd: cisis, cisis_header: true}",
    )
    try:
        no_set_id = TSH.read_bytes().replace(b'<setId root="1.2.250.1.213.1.1.1.55.2024.9"/>', b"")
        assert no_set_id != TSH.read_bytes()
        checked.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"))
        checked.send(mdm("T02", no_set_id, "3"))
        assert checked.states() == [("1", "delivered"), ("2", "delivered"), ("3", "dead_lettered")]
        [(code, reason)] = checked.rows(
            "SELECT error_code, error_reason FROM journal_messages WHERE control_id = '3'"
        )
        assert code == "invalid_document"
        assert "the CDA of OBX 1: line " in str(reason) and "cisis.version" in str(reason)
    finally:
        checked.stop()


OTHER = pid("IPP2", "185057512300143", name="MARTIN", given="PAUL", dob="19850505", sex="M")
TSH_ID = "1.2.250.1.213.1.1.1.55.2024.9.1"


def other_copy(cda: bytes, new_id: str) -> bytes:
    """The TSH report under another document id (and set id), for another patient."""
    return cda.replace(TSH_ID.encode(), new_id.encode()).replace(
        b'<setId root="1.2.250.1.213.1.1.1.55.2024.9"/>', b'<setId root="9.9.9"/>'
    )


def test_a_cda_of_one_patient_sent_under_another_patients_ipp_goes_to_review(
    engine: IdentityEngine,
) -> None:
    ipp_only = pid("IPP2", name="MARTIN", given="PAUL", dob="19850505", sex="M", status="")
    engine.send(adt("A28", PATIENT, "1"), adt("A28", OTHER, "2"))
    engine.send(mdm("T02", TSH.read_bytes(), "3", pid_segment=ipp_only))
    assert engine.states()[2] == ("3", "review")
    assert documents(engine) == []


def test_a_deletion_from_one_patient_cannot_touch_another_patients_document(
    engine: IdentityEngine,
) -> None:
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"))
    # Another patient's deletion names the first patient's document in TXA-12.
    theirs = TSH.read_bytes().replace(b"279035121518989", b"185057512300143")
    theirs = other_copy(theirs, "7.7.7.7")
    engine.send(adt("A28", OTHER, "3"), mdm("T04", theirs, "4", pid_segment=OTHER, txa12=TSH_ID))
    assert (TSH_ID, 1, "current") in documents(engine)


def test_a_deletion_naming_the_document_in_txa12_with_its_root_and_extension_applies(
    engine: IdentityEngine,
) -> None:
    with_extension = TSH.read_bytes().replace(
        f'<id root="{TSH_ID}"/>'.encode(), b'<id root="1.2.3.4" extension="DOC1"/>'
    )
    assert with_extension != TSH.read_bytes()
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", with_extension, "2"))
    carried = with_extension.replace(b'extension="DOC1"', b'extension="DOC1-COPY"')
    engine.send(mdm("T04", carried, "3", txa12="DOC1^^1.2.3.4^ISO"))
    assert ("1.2.3.4^DOC1", 1, "deleted") in documents(engine)


def test_a_deleted_lab_report_takes_its_results_out_of_the_record(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"))
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", engine.url)
    show = ["patient", "show", INS, "--json"]
    assert len(json.loads(CliRunner().invoke(app, show).stdout)["results"]) == 2
    engine.send(mdm("T04", TSH.read_bytes(), "3"))
    assert json.loads(CliRunner().invoke(app, show).stdout)["results"] == []


def oru_with(cda: bytes, control_id: str, status: str, extra: str = "") -> str:
    data = base64.b64encode(cda).decode()
    obx = f"OBX|1|ED|11502-2^CR^LN||^text^XML^Base64^{data}||||||{status}"
    tail = f"\r{extra}" if extra else ""
    return f"{msh('ORU^R01^ORU_R01', control_id)}\r{PATIENT}\r{obx}{tail}"


def test_oru_statuses_w_withdraws_a_document_and_an_unknown_one_is_refused(
    engine: IdentityEngine,
) -> None:
    engine.send(adt("A28", PATIENT, "1"), oru_with(TSH.read_bytes(), "2", "F"))
    engine.send(oru_with(TSH.read_bytes(), "3", "W"))
    assert documents(engine) == [(TSH_ID, 1, "deleted")]
    engine.send(oru_with(TSH.read_bytes(), "4", "X"))
    assert engine.rows("SELECT state, error_code FROM journal_messages WHERE control_id = '4'") == [
        ("dead_lettered", "invalid_document")
    ]


def test_an_oru_with_a_cda_and_other_results_is_refused_in_the_ack(engine: IdentityEngine) -> None:
    potassium = "OBX|2|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.0|HH|||F"
    acks = engine.send(adt("A28", PATIENT, "1"), oru_with(TSH.read_bytes(), "2", "F", potassium))
    assert acks == ["AA", "AR"]


def test_an_original_arriving_after_its_replacement_is_kept_superseded(
    engine: IdentityEngine,
) -> None:
    v2 = TSH.read_bytes().replace(TSH_ID.encode(), b"1.2.250.1.213.1.1.1.55.2024.9.2")
    v2 = v2.replace(b'<versionNumber value="1"/>', b'<versionNumber value="2"/>')
    assert b'<versionNumber value="2"/>' in v2
    engine.send(adt("A28", PATIENT, "1"), mdm("T10", v2, "2"), mdm("T02", TSH.read_bytes(), "3"))
    assert sorted(documents(engine)) == [
        (TSH_ID, 1, "superseded"),
        ("1.2.250.1.213.1.1.1.55.2024.9.2", 2, "current"),
    ]


def test_a_document_in_review_attached_by_an_operator_is_stored(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ipp_only = pid("IPP2", name="MARTIN", given="PAUL", dob="19850505", sex="M", status="")
    engine.send(adt("A28", PATIENT, "1"), adt("A28", OTHER, "2"))
    engine.send(mdm("T02", TSH.read_bytes(), "3", pid_segment=ipp_only))
    [review] = json.loads(engine.cli(monkeypatch, "conflicts", "--json").stdout)
    first = engine.patient("IPP1")["id"]
    assert engine.attach(monkeypatch, review["id"], first, "the lab's IPP was wrong").exit_code == 0
    engine.wait_idle()
    assert engine.states()[2] == ("3", "delivered")
    assert engine.rows("SELECT patient_id FROM store_documents") == [(first,)]


def test_a_replacement_without_masking_flags_keeps_those_of_the_version_it_replaces(
    engine: IdentityEngine,
) -> None:
    v2 = TSH.read_bytes().replace(TSH_ID.encode(), b"1.2.250.1.213.1.1.1.55.2024.9.2")
    v2 = v2.replace(b'<versionNumber value="1"/>', b'<versionNumber value="2"/>')
    unflagged = "\r".join(
        seg for seg in mdm("T10", v2, "3", txa12="").split("\r") if "MetaDMPMSS" not in seg
    )
    unflagged = unflagged.replace(
        "TXA|1|11502-2|TEXT|20240306111154||||||||",
        "TXA|1|11502-2|TEXT|20240306111154|||||||||" + TSH_ID,
    )
    engine.send(adt("A28", PATIENT, "1"), mdm("T02", TSH.read_bytes(), "2"), unflagged)
    flags = engine.rows(
        "SELECT version, status, masked_ps, invisible_legal_reps FROM store_documents ORDER BY id"
    )
    assert [(v, s, bool(m), bool(i)) for v, s, m, i in flags] == [
        (1, "superseded", True, True),
        (2, "current", True, True),
    ]


def test_undoing_a_merge_leaves_a_document_filed_through_the_survivors_identifiers_on_it(
    engine: IdentityEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = "GONE^^^CHU-X&1.2.250.1.71.4.2.2&ISO^PI"
    engine.send(
        adt("A28", PATIENT, "1"),
        adt("A28", pid("GONE", status=""), "2"),
        adt("A40", PATIENT, "3", mrg=gone),
        mdm("T02", TSH.read_bytes(), "4"),
    )
    [(merge_id,)] = engine.rows("SELECT id FROM store_merges")
    undone = engine.cli(monkeypatch, "unmerge", str(merge_id), "--reason", "wrong A40")
    assert undone.exit_code == 0, undone.output
    [(survivor,)] = engine.rows("SELECT survivor_id FROM store_merges")
    assert engine.rows("SELECT patient_id FROM store_documents") == [(survivor,)]
    assert "moved back" not in undone.stdout
    assert engine.rows("SELECT code FROM store_identity_reviews WHERE code != 'homonym'") == []
