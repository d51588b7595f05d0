"""The shared record's API under the DMP's rules (DOMAIN.md §6), end to end: documents filed
over MLLP, tokens from the CLI, requests to the record listener; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.integration.identity_harness import adt, pid
from tests.integration.record_harness import (
    BIOLOGIST,
    GP,
    HOSPITAL_DOCTOR,
    IMG_ID,
    INS,
    OTHER_INS,
    OUTSIDER,
    TSH,
    TSH_ID,
    VAC_ID,
    VSM_ID,
    RecordWorld,
    auth,
    document_ids,
    mdm,
)


@pytest.fixture
def world(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordWorld]:
    running = RecordWorld(store_url, monkeypatch)
    yield running
    running.stop()


def test_without_credentials_401_and_an_unknown_ins_is_404_for_every_caller(
    world: RecordWorld,
) -> None:
    """DESIGN.md §3.9 (every actor is identified). A 404 for an unknown INS, the same for a
    professional and a patient, and for a patient asking for someone else's record, so that
    the API does not reveal who has a record."""
    patient = world.admitted_with_documents()
    answer = world.http.get(world.path(""))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert world.get("not-a-token").status_code == 401
    world.engine.send(adt("A28", pid("IPP2", OTHER_INS, name="AUTRE", given="JEAN"), "9"))
    world.cli("patients", "enroll", OTHER_INS)
    expected = (404, {"reason": "not_found"})
    for ins in (OTHER_INS, "299999999999999"):
        for token in (world.as_(HOSPITAL_DOCTOR), world.as_(OUTSIDER), patient):
            answer = world.http.get(world.path("", ins), headers=auth(token))
            if token == patient or ins != OTHER_INS:
                assert (answer.status_code, answer.json()) == expected


def test_a_record_opens_once_the_patient_consents_and_can_be_closed_and_reopened(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 114-115 (consent, CSP R1111-46: the patient may close the DMP): no
    record before consent (404), open after it, 403 record_closed once closed, open again
    when reopened."""
    assert world.engine.send(adt("A01", pid("IPP1", INS), "1"), mdm(TSH, "2")) == ["AA", "AA"]
    patient = world.patient()
    doctor = world.professional(HOSPITAL_DOCTOR)
    assert world.get(doctor).status_code == 404
    assert world.get(patient).json()["state"] == "none"
    assert world.post(patient, "consent").status_code == 204
    assert world.get(doctor).status_code == 200
    assert world.post(doctor, "close").json() == {"reason": "not_authorised"}
    assert world.post(patient, "close").status_code == 204
    assert world.get(doctor).json() == {"reason": "record_closed"}
    assert world.get(patient).json()["state"] == "closed"  # the patient still reads it
    assert world.post(patient, "reopen").status_code == 204
    assert world.get(doctor).status_code == 200


def test_a_closed_record_takes_no_new_document_which_is_dead_lettered_with_the_reason(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 115 (the patient may close the DMP): a document for a closed record is
    refused with a clear reason and dead-lettered; once reopened the record takes documents."""
    patient = world.admitted_with_documents()
    assert world.post(patient, "close").status_code == 204
    world.engine.send(mdm(TSH.read_bytes().replace(b"2024.9.1", b"2024.9.7"), "20"))
    [(state, code, reason)] = world.engine.rows(
        "SELECT state, error_code, error_reason FROM journal_messages WHERE control_id = '20'"
    )
    assert (state, code) == ("dead_lettered", "record_closed")
    assert "closed" in str(reason)
    assert world.post(patient, "reopen").status_code == 204
    world.engine.send(mdm(TSH.read_bytes().replace(b"2024.9.1", b"2024.9.8"), "21"))
    assert world.engine.states()[-1] == ("21", "delivered")


def test_the_care_team_is_presumed_authorised_others_need_the_patients_authorisation(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 114 (CSP R1111-46: the care team is presumed authorised; outside it,
    consent is needed): a professional of the facility of the visit reads; an outsider gets
    403 not_authorised until the patient authorises them, and again once it is withdrawn."""
    patient = world.admitted_with_documents()
    assert world.get(world.as_(HOSPITAL_DOCTOR)).json()["access"]["basis"] == "care_team"
    outsider = world.as_(OUTSIDER)
    assert world.get(outsider).json() == {"reason": "not_authorised"}
    assert world.post(outsider, f"authorizations/{OUTSIDER}").status_code == 403
    assert world.post(patient, f"authorizations/{OUTSIDER}").status_code == 204
    assert world.get(outsider).json()["access"]["basis"] == "authorised"
    assert [a["rpps"] for a in world.get(patient, "authorizations").json()] == [OUTSIDER]
    assert world.delete(patient, f"authorizations/{OUTSIDER}").status_code == 204
    assert world.get(outsider).json() == {"reason": "not_authorised"}


def test_the_patient_may_block_a_professional_of_the_care_team(world: RecordWorld) -> None:
    """DOMAIN.md line 127-128 (the patient sets who is authorised): a blocked professional is
    refused with blocked_by_patient even inside the care team, and even for bris de glace."""
    patient = world.admitted_with_documents()
    doctor = world.as_(HOSPITAL_DOCTOR)
    assert world.post(patient, f"blocks/{HOSPITAL_DOCTOR}").status_code == 204
    assert world.get(doctor).json() == {"reason": "blocked_by_patient"}
    answer = world.post(doctor, "emergency-access", {"reason": "arrêt cardiaque"})
    assert answer.json() == {"reason": "blocked_by_patient"}
    assert world.delete(patient, f"blocks/{HOSPITAL_DOCTOR}").status_code == 204
    assert world.get(doctor).status_code == 200


def test_bris_de_glace_opens_the_record_for_a_while_and_is_flagged_in_the_access_log(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 116-117 (emergency access, CSP L1111-17: allowed unless the patient
    opposed it beforehand; always logged and shown): the outsider breaks the glass, reads the
    record, the patient sees it flagged with its reason; once the time is up, refused again."""
    patient = world.admitted_with_documents()
    outsider = world.as_(OUTSIDER)
    assert world.post(outsider, "emergency-access", {}).status_code == 422  # a reason is needed
    answer = world.post(outsider, "emergency-access", {"reason": "inconscient aux urgences"})
    assert answer.status_code == 201
    record = world.get(outsider).json()
    assert record["access"] == {"basis": "emergency", "emergency": True}
    log = world.get(patient, "access-log").json()
    emergencies = [e for e in log if e["emergency"]]
    assert {e["action"] for e in emergencies} == {"emergency_access", "read_record"}
    assert {e["actor"] for e in emergencies} == {f"rpps:{OUTSIDER}"}
    assert "inconscient aux urgences" in {e["reason"] for e in emergencies}
    world.engine.rows("SELECT 1")  # the access ends: moved into the past
    with world.engine.engine.db.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE record_emergency_accesses SET ends_at = at"))
    assert world.get(outsider).json() == {"reason": "not_authorised"}


def test_bris_de_glace_is_refused_when_the_patient_opposed_it_beforehand(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 116-117 (unless the patient opposed it beforehand): 403
    emergency_opposed, and the attempt is in the patient's access log."""
    patient = world.admitted_with_documents()
    assert (
        world.http.patch(
            world.path("settings"), json={"emergency_opposed": True}, headers=auth(patient)
        ).status_code
        == 204
    )
    answer = world.post(world.as_(OUTSIDER), "emergency-access", {"reason": "coma"})
    assert (answer.status_code, answer.json()) == (403, {"reason": "emergency_opposed"})
    log = world.get(patient, "access-log").json()
    assert any(e["action"] == "emergency_refused" and e["emergency"] for e in log)


def test_masque_ps_hides_a_document_from_professionals_other_than_its_author(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 69-70 and 90-91 (MASQUE_PS): hidden from the care team, shown to the
    author and to the patient; a hidden document reads as not found."""
    assert world.engine.send(adt("A01", pid("IPP1", INS), "1"), mdm(TSH, "2", masque_ps=True))
    patient = world.patient()
    world.post(patient, "consent")
    doctor, author = world.professional(HOSPITAL_DOCTOR), world.professional(BIOLOGIST)
    assert TSH_ID not in document_ids(world.get(doctor).json())
    assert world.get(doctor, f"documents/{TSH_ID}").status_code == 404
    assert world.get(doctor, "results").json() == []  # its results go with it
    assert TSH_ID in document_ids(world.get(author).json())
    assert "masked_ps" in world.get(author, f"documents/{TSH_ID}").json()["flags"]
    assert TSH_ID in document_ids(world.get(patient).json())


def test_invisible_patient_hides_a_document_from_the_patient_until_the_author_lifts_it(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 118-119 (a professional may hide a result from the patient until an
    announcement consultation; R1111-53): hidden from the patient, then shown once the author
    reveals it; only the author may."""
    world.engine.send(adt("A01", pid("IPP1", INS), "1"), mdm(TSH, "2", invisible_patient=True))
    patient = world.patient()
    world.post(patient, "consent")
    doctor, author = world.professional(HOSPITAL_DOCTOR), world.professional(BIOLOGIST)
    assert TSH_ID not in document_ids(world.get(patient).json())
    assert TSH_ID in document_ids(world.get(doctor).json())
    assert world.post(doctor, f"documents/{TSH_ID}/reveal").json() == {"reason": "not_authorised"}
    assert world.post(author, f"documents/{TSH_ID}/reveal").status_code == 204
    assert TSH_ID in document_ids(world.get(patient).json())


def test_invisible_rep_legaux_hides_a_document_from_legal_representatives_only(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 69-70, 90-91 (INVISIBLE_REPRESENTANTS_LEGAUX)."""
    world.engine.send(adt("A01", pid("IPP1", INS), "1"), mdm(TSH, "2", invisible_rep_legaux=True))
    patient = world.patient()
    world.post(patient, "consent")
    parent = world.cli("patients", "add-representative", INS, "--name", "Parent").strip()
    assert TSH_ID in document_ids(world.get(patient).json())
    assert TSH_ID not in document_ids(world.get(parent).json())
    log = world.get(patient, "access-log").json()
    assert any(e["actor"] == "representative:Parent" for e in log)


def test_the_patient_masks_a_document_from_professionals_but_not_from_its_author_or_the_mt(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 120-124 (a document the patient masks stays visible to the patient, to
    the médecin traitant and to the author; everyone else sees neither it nor that something
    is masked), then unmasks it."""
    patient = world.admitted_with_documents()
    assert world.post(patient, f"documents/{TSH_ID}/mask").status_code == 204
    for rpps, sees in ((HOSPITAL_DOCTOR, False), (BIOLOGIST, True), (GP, False)):
        assert (TSH_ID in document_ids(world.get(world.as_(rpps)).json())) is sees, rpps
    world.http.patch(world.path("settings"), json={"medecin_traitant": GP}, headers=auth(patient))
    assert TSH_ID in document_ids(world.get(world.as_(GP)).json())
    assert world.get(patient).json()["sections"]["medical"]["biology"][0]["masked_by_patient"]
    assert world.delete(patient, f"documents/{TSH_ID}/mask").status_code == 204
    assert TSH_ID in document_ids(world.get(world.as_(HOSPITAL_DOCTOR)).json())


def test_the_medecin_traitant_writes_the_vsm_and_one_from_anyone_else_is_flagged(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 111-112 (the VSM is written and updated by the médecin traitant): the
    VSM is kept either way, flagged while its author is not the declared médecin traitant."""
    patient = world.admitted_with_documents()
    [vsm] = world.get(patient).json()["sections"]["medical"]["summary"]
    assert vsm["flags"] == ["vsm_not_by_medecin_traitant"]
    world.http.patch(world.path("settings"), json={"medecin_traitant": GP}, headers=auth(patient))
    [vsm] = world.get(patient).json()["sections"]["medical"]["summary"]
    assert (vsm["id"], vsm["flags"]) == (VSM_ID, [])
    assert world.get(world.as_(GP)).json()["access"]["basis"] == "medecin_traitant"


def test_the_patient_deletes_their_own_documents_but_not_a_professionals(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 120-121 (a patient cannot delete a professional's document, R1111-51)
    and line 107-110 (documents the patient adds: the personal space)."""
    patient = world.admitted_with_documents()
    answer = world.post(
        patient,
        "personal-documents",
        {"title": "Poids", "kind": "measurement", "code": "29463-7", "value": "61", "unit": "kg"},
    )
    assert answer.status_code == 201
    mine = answer.json()["id"]
    [entry] = world.get(patient).json()["sections"]["personal"]
    assert (entry["title"], entry["value"], entry["unit"]) == ("Poids", "61", "kg")
    assert world.get(world.as_(HOSPITAL_DOCTOR)).json()["sections"]["personal"] == [entry]
    assert world.delete(patient, f"documents/{TSH_ID}").json() == {"reason": "not_document_author"}
    assert TSH_ID in document_ids(world.get(patient).json())
    assert world.delete(patient, f"documents/{mine}").status_code == 204
    assert world.get(patient).json()["sections"]["personal"] == []


def test_sections_arrange_documents_by_category_newest_first(world: RecordWorld) -> None:
    """DOMAIN.md line 106-110 and 125-127 (content, spaces and rubriques, newest first)."""
    world.admitted_with_documents()
    record = world.get(world.as_(HOSPITAL_DOCTOR)).json()
    medical = record["sections"]["medical"]
    assert [d["id"] for d in medical["biology"]] == [TSH_ID]
    assert [d["id"] for d in medical["imaging"]] == [IMG_ID]
    assert [d["id"] for d in medical["summary"]] == [VSM_ID]
    assert [d["id"] for d in record["sections"]["prevention"]["documents"]] == [VAC_ID]
    listed = world.get(world.as_(HOSPITAL_DOCTOR), "documents").json()
    times = [d["effective_time"][:14] for d in listed]
    assert times == sorted(times, reverse=True)
    assert [
        d["id"]
        for d in world.get(world.as_(HOSPITAL_DOCTOR), "documents", category="imaging").json()
    ] == [IMG_ID]
    since = world.get(world.as_(HOSPITAL_DOCTOR), "documents", since="2021-03-01").json()
    assert {d["id"] for d in since} == {TSH_ID, VAC_ID}


def test_a_document_comes_with_its_sha256_and_its_cda_with_accept_xml(world: RecordWorld) -> None:
    """DOMAIN.md line 113 (every document is timestamped, attributed to its author; its
    integrity is checkable)."""
    world.admitted_with_documents()
    doctor = world.as_(HOSPITAL_DOCTOR)
    meta = world.get(doctor, f"documents/{TSH_ID}").json()
    digest = hashlib.sha256(TSH.read_bytes()).hexdigest()
    assert (meta["sha256"], meta["author_id"].endswith("801234534765")) == (digest, True)
    assert meta["stored_at"] and meta["effective_time"].startswith("20210401")
    cda = world.http.get(
        world.path(f"documents/{TSH_ID}"),
        headers={**auth(doctor), "Accept": "application/xml"},
    )
    assert cda.headers["content-type"].startswith("application/xml")
    assert hashlib.sha256(cda.content).hexdigest() == digest


def test_results_come_as_a_series_per_analyte(world: RecordWorld) -> None:
    """DOMAIN.md line 106-107 (results: biology): the lab report's results, one series per
    analyte, oldest point first, with unit and reference range."""
    world.admitted_with_documents()
    series = world.get(world.as_(HOSPITAL_DOCTOR), "results").json()
    assert series, "the CR-BIO's results"
    for s in series:
        assert s["code"] and s["points"]
        times = [p["observed_ts"] for p in s["points"]]
        assert times == sorted(times)
    code = series[0]["code"]
    only = world.get(world.as_(HOSPITAL_DOCTOR), "results", code=code).json()
    assert [s["code"] for s in only] == [code]


def test_the_access_log_names_every_reader_and_the_engines_filing_for_the_patient_only(
    world: RecordWorld,
) -> None:
    """DOMAIN.md line 130 (every read or write is logged; the patient can see who accessed the
    record) and line 128-129 (the record shows the last professional who accessed it)."""
    patient = world.admitted_with_documents()
    doctor = world.as_(HOSPITAL_DOCTOR)
    world.get(doctor)
    world.get(doctor, f"documents/{TSH_ID}")
    assert world.get(doctor, "access-log").json() == {"reason": "not_authorised"}
    log = world.get(patient, "access-log").json()
    rows = {(e["actor"], e["role"], e["action"], e["target"]) for e in log}
    assert (f"rpps:{HOSPITAL_DOCTOR}", "professional", "read_record", "") in rows
    assert (f"rpps:{HOSPITAL_DOCTOR}", "professional", "read_document", TSH_ID) in rows
    assert ("patient", "patient", "consent", "") in rows
    filed = {e["target"] for e in log if e["action"] == "file_document"}
    assert filed == {TSH_ID, VSM_ID, IMG_ID, VAC_ID}
    assert {e["role"] for e in log if e["action"] == "file_document"} == {"system"}
    last = world.get(patient).json()["last_professional_access"]
    assert last["actor"] == f"rpps:{HOSPITAL_DOCTOR}"


def test_the_access_log_cannot_be_updated(world: RecordWorld) -> None:
    """DOMAIN.md line 130; DESIGN.md §3.9 (an access log that no one can edit)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    world.admitted_with_documents()
    with pytest.raises(DBAPIError, match="append-only"), world.engine.engine.db.begin() as conn:
        conn.execute(text("UPDATE record_access_log SET actor = 'nobody'"))


def test_the_record_listener_publishes_its_openapi_schema_without_cdn_pages(
    world: RecordWorld,
) -> None:
    """The API is described on the record listener; no page pulls assets from elsewhere."""
    paths = world.http.get("/openapi.json").json()["paths"]
    assert "/api/v1/records/{ins}/emergency-access" in paths
    assert "/api/v1/records/{ins}/authorizations/{rpps}" in paths
    assert world.http.get("/docs").status_code == 404


def test_keep_alive_answers_do_not_wait_for_the_clients_delayed_ack(world: RecordWorld) -> None:
    """The listener sets TCP_NODELAY on its connections: without it each answer on a
    keep-alive connection waited about 40 ms (measured by bench/record_api.py)."""
    import statistics
    import time

    world.http.get("/openapi.json")
    times = []
    for _ in range(10):
        start = time.perf_counter()
        assert world.http.get("/openapi.json").status_code == 200
        times.append(time.perf_counter() - start)
    assert statistics.median(times) < 0.030, times
