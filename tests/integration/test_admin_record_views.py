"""Operators' views of patient data on the admin listener go through the shared record's access
layer (issue 13, DESIGN.md §3.9, DOMAIN.md §6 traceability): over the real admin listener and
record listener, each view of a message's payload, each search by patient and each identity
comparison leaves one line naming the operator in the patient's access log, which the patient
reads on the record API. A viewer, who sees no payload, leaves none."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine.admin.roles import Role
from tests.integration.admin_harness import Admin, serve
from tests.integration.identity_harness import oru, pid
from tests.integration.record_harness import INS, RecordWorld
from tests.integration.test_admin_console import browser, signed_in


@pytest.fixture
def world(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordWorld]:
    running = RecordWorld(store_url, monkeypatch)
    yield running
    running.stop()


@pytest.fixture
def admin(world: RecordWorld) -> Iterator[Admin]:
    with serve(world.engine.engine.db) as served:
        yield served


def operator_lines(world: RecordWorld, patient: str) -> list[dict[str, Any]]:
    """The operators' lines of the patient's access log, as the patient reads it."""
    answer = world.get(patient, "access-log")
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json() if e["role"] == "operator"]


def message_id(world: RecordWorld, control_id: str) -> int:
    [(found,)] = world.engine.rows(
        "SELECT id FROM journal_messages WHERE control_id = :c", c=control_id
    )
    assert isinstance(found, int)
    return found


def test_an_operator_viewing_a_message_in_the_console_leaves_one_line_the_patient_sees(
    world: RecordWorld, admin: Admin
) -> None:
    patient = world.admitted_with_documents()
    admission = message_id(world, "1")  # the ADT^A01 whose PID carries the patient's INS
    assert operator_lines(world, patient) == []
    with browser(admin) as client:
        signed_in(client, "viewer")
        page = client.get(f"/messages/{admission}")
        assert page.status_code == 200 and "PID" not in page.text
    assert operator_lines(world, patient) == []  # a viewer sees no payload: nothing to log
    with browser(admin) as client:
        signed_in(client, "operator")
        page = client.get(f"/messages/{admission}")
        assert page.status_code == 200 and "PID" in page.text
    [line] = operator_lines(world, patient)
    assert (line["actor"], line["action"]) == ("operator:user:operator", "read_message")
    assert (line["target"], line["reason"]) == (f"message:{admission}", "admin: message payload")


def test_the_payload_api_and_a_search_by_ins_are_logged_with_the_tokens_name(
    world: RecordWorld, admin: Admin
) -> None:
    patient = world.admitted_with_documents()
    report = message_id(world, "2")  # an MDM for the patient (its CDA names them too)
    api = httpx.Client(base_url=admin.url + "/api/v1", headers=admin.bearer(Role.OPERATOR))
    with api:
        assert api.get(f"/messages/{report}/payload").status_code == 200
        found = api.get("/messages", params={"patient": INS}).json()["items"]
        assert report in {m["id"] for m in found}
        viewer = api.get("/messages", params={"patient": INS}, headers=admin.bearer(Role.VIEWER))
        assert viewer.status_code == 403
    lines = operator_lines(world, patient)
    assert sorted((e["action"], e["target"]) for e in lines) == [
        ("read_message", f"message:{report}"),
        ("search_messages", "messages"),
    ]
    assert {e["actor"] for e in lines} == {"operator:token:operator-token"}


def test_an_identity_comparison_is_logged_in_the_record_of_the_patient_it_shows(
    world: RecordWorld, admin: Admin
) -> None:
    """A result whose birth date disagrees with the stored patient waits for review (904);
    the operator's side-by-side view shows the stored patient's traits: logged."""
    patient = world.admitted_with_documents()
    assert world.engine.send(oru(pid("", INS, dob="19790329"), "9")) == ["AA"]
    [(review_id,)] = world.engine.rows("SELECT id FROM store_identity_reviews")
    with browser(admin) as client:
        signed_in(client, "operator")
        assert client.get(f"/reviews/{review_id}").status_code == 200
    [line] = operator_lines(world, patient)
    assert (line["action"], line["target"]) == ("compare_identity", f"review:{review_id}")
    assert line["actor"] == "operator:user:operator"


def test_the_cli_views_of_a_payload_a_review_and_a_trace_are_logged_in_the_record(
    world: RecordWorld,
) -> None:
    """``dlq show`` prints a message's bytes, ``identity show`` the traits side by side and
    ``trace INS`` a patient's messages: each leaves a line naming the host login, as
    ``patient show`` does."""
    patient = world.admitted_with_documents()
    admission = message_id(world, "1")
    assert "PID|" in world.cli("dlq", "show", str(admission))
    assert f"#{admission} " in world.cli("trace", INS)
    assert world.engine.send(oru(pid("", INS, dob="19790329"), "9")) == ["AA"]
    [(review_id,)] = world.engine.rows("SELECT id FROM store_identity_reviews")
    assert "19790329" in world.cli("identity", "show", str(review_id))
    lines = operator_lines(world, patient)
    assert sorted((e["action"], e["target"], e["reason"]) for e in lines) == [
        ("compare_identity", f"review:{review_id}", "aiguillage identity show"),
        ("read_message", f"message:{admission}", "aiguillage dlq show"),
        ("search_messages", "messages", "aiguillage trace"),
    ]
    assert {e["actor"] for e in lines} == {f"operator:{getpass.getuser()}"}
