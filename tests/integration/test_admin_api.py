"""The operations API on a real socket: roles, search, detail, dead letters, reviews, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from engine.admin.roles import Role
from engine.admin.tables import audit, tokens
from engine.db import make_engine
from engine.errors import IdentityConflict
from engine.journal.message_tables import State, events, messages
from engine.migrate import upgrade
from engine.pipeline.identify import review
from tests.integration import admin_seed as seed
from tests.integration.admin_harness import Admin, serve


@pytest.fixture
def db(store_url: str) -> Iterator[Engine]:
    engine = make_engine(store_url, durability="normal")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def admin(db: Engine) -> Iterator[Admin]:
    with serve(db) as running:
        yield running


def get(admin: Admin, path: str, role: Role | None = None, **params: object) -> httpx.Response:
    headers = admin.bearer(role) if role else {}
    return httpx.get(admin.url + path, headers=headers, params=params, timeout=10)  # type: ignore[arg-type]


def post(admin: Admin, path: str, role: Role, body: object = None) -> httpx.Response:
    return httpx.post(admin.url + path, headers=admin.bearer(role), json=body, timeout=10)


def audit_rows(db: Engine, action: str) -> list[dict[str, object]]:
    with db.connect() as conn:
        rows = conn.execute(select(audit).where(audit.c.action == action).order_by(audit.c.id))
        return [dict(r._mapping) for r in rows]


def test_the_api_answers_401_without_credentials_and_with_an_unknown_or_revoked_token(
    admin: Admin, db: Engine
) -> None:
    assert get(admin, "/api/v1/channels").status_code == 401
    bad = httpx.get(admin.url + "/api/v1/channels", headers={"Authorization": "Bearer aig_nope"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"
    with db.begin() as conn:
        conn.execute(tokens.update().values(revoked_at=datetime.now(UTC)))
    assert get(admin, "/api/v1/channels", Role.ADMIN).status_code == 401


ROUTES = [
    ("GET", "/api/v1/channels", Role.VIEWER),
    ("GET", "/api/v1/messages", Role.VIEWER),
    ("GET", "/api/v1/identity/reviews", Role.VIEWER),
    ("GET", "/api/v1/identity/held", Role.VIEWER),
    ("GET", "/api/v1/messages/{id}/payload", Role.OPERATOR),
    ("GET", "/api/v1/audit", Role.OPERATOR),
    ("POST", "/api/v1/dead-letters/replay", Role.OPERATOR),
    ("POST", "/api/v1/dead-letters/discard", Role.OPERATOR),
    ("POST", "/api/v1/channels/lab/pause", Role.ADMIN),
    ("POST", "/api/v1/reload", Role.ADMIN),
    ("GET", "/api/v1/users", Role.ADMIN),
]


def test_each_route_answers_403_below_its_role_and_serves_its_role_and_above(
    admin: Admin, db: Engine
) -> None:
    dead = seed.message(db, "D1", state=State.DEAD_LETTERED, error_code="unsupported")
    body = {"ids": [dead], "dry_run": True}
    for method, path, needed in ROUTES:
        path = path.format(id=dead)
        for role in Role:
            if method == "GET":
                status = get(admin, path, role).status_code
            else:
                status = post(admin, path, role, body).status_code
            if role.allows(needed):
                assert status not in (401, 403), (path, role, status)
            else:
                assert status == 403, (path, role, status)


def test_a_viewer_sees_metadata_but_never_payloads_patient_keys_or_traits(
    admin: Admin, db: Engine
) -> None:
    mid = seed.message(db, "V1")
    found = get(admin, "/api/v1/messages", Role.VIEWER).json()["items"]
    assert [m["id"] for m in found] == [mid]
    assert found[0]["patient_key"] is None
    assert found[0]["control_id"] == "V1"
    detail = get(admin, f"/api/v1/messages/{mid}", Role.VIEWER)
    assert detail.status_code == 200
    assert "PAT-TROIS" not in detail.text and "000003" not in detail.text
    assert "raw" not in detail.json()
    assert get(admin, f"/api/v1/messages/{mid}/payload", Role.VIEWER).status_code == 403
    by_patient = get(admin, "/api/v1/messages", Role.VIEWER, patient="000003^^^CHU-X")
    assert by_patient.status_code == 403
    assert audit_rows(db, "view_payload") == []


def test_an_operator_sees_the_payload_with_its_segments_and_the_view_is_audited(
    admin: Admin, db: Engine
) -> None:
    mid = seed.message(db, "P1")
    answer = get(admin, f"/api/v1/messages/{mid}/payload", Role.OPERATOR).json()
    assert [s["name"] for s in answer["segments"]] == ["MSH", "PID", "OBX"]
    assert "PAT-TROIS" in answer["text"]
    [row] = audit_rows(db, "view_payload")
    assert row["actor"] == "token:operator-token"
    assert json.loads(str(row["ids"])) == [mid]
    assert "PAT-TROIS" not in json.dumps(row, default=str)


def test_message_detail_shows_the_history_attempts_errors_and_the_ack_sent(
    admin: Admin, db: Engine
) -> None:
    mid = seed.message(db, "H1", state=State.DEAD_LETTERED, error_code="unsupported")
    with db.begin() as conn:
        conn.execute(
            events.insert().values(
                message_id=mid,
                at=datetime.now(UTC),
                state="dead_lettered",
                attempt=1,
                stage="route",
                code="unsupported",
                reason="refused",
            )
        )
    detail = get(admin, f"/api/v1/messages/{mid}", Role.VIEWER).json()
    assert detail["state"] == "dead_lettered"
    assert detail["error_code"] == "unsupported"
    assert detail["ack"]["code"] == "AA"
    assert [(e["state"], e["code"]) for e in detail["history"]] == [
        ("dead_lettered", "unsupported")
    ]
    assert get(admin, "/api/v1/messages/999999", Role.VIEWER).status_code == 404


def test_search_filters_by_each_field_and_pages_newest_first(admin: Admin, db: Engine) -> None:
    old = datetime.now(UTC) - timedelta(days=2)
    a = seed.message(db, "S1", received_at=old)
    b = seed.message(db, "S2", channel="quiet", kind=("ADT", "A01"), sender="token:gam")
    c = seed.message(db, "S3", state=State.HELD, patient_key="000777^CHU-Y")

    def ids(**params: object) -> list[int]:
        answer = get(admin, "/api/v1/messages", Role.OPERATOR, **params)
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()["items"]]

    assert ids() == [c, b, a]
    assert ids(channel="quiet") == [b]
    assert ids(state="held") == [c]
    assert ids(type="ADT") == [b]
    assert ids(type="ORU^R01") == [c, a]
    assert ids(control_id="S2") == [b]
    assert ids(sender="token:gam") == [b]
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert ids(since=since) == [c, b]
    assert ids(until=since) == [a]
    assert ids(patient="000003^^^CHU-X") == [b, a]
    assert ids(patient="000003", facility="CHU-X") == [b, a]
    assert ids(patient="000777") == [c]
    first = get(admin, "/api/v1/messages", Role.VIEWER, limit=2).json()
    assert [m["id"] for m in first["items"]] == [c, b]
    rest = get(admin, "/api/v1/messages", Role.VIEWER, limit=2, before_id=first["next_before_id"])
    assert [m["id"] for m in rest.json()["items"]] == [a]
    assert rest.json()["next_before_id"] is None


def test_search_by_ins_finds_the_messages_carrying_only_the_patients_local_id(
    admin: Admin, db: Engine
) -> None:
    seed.patient(db)
    mine = seed.message(db, "I1")
    seed.message(db, "I2", patient_key="000999^CHU-X")
    found = get(admin, "/api/v1/messages", Role.OPERATOR, patient=seed.INS).json()["items"]
    assert [m["id"] for m in found] == [mine]
    assert found[0]["patient_key"] == "000003^CHU-X"


def test_bulk_replay_by_filter_takes_the_dry_run_count_and_a_reason_and_is_audited(
    admin: Admin, db: Engine
) -> None:
    dead = [seed.message(db, f"B{i}", state=State.DEAD_LETTERED, error_code="x") for i in range(3)]
    seed.message(db, "B9", channel="quiet", state=State.DEAD_LETTERED, error_code="x")
    action = {"filter": {"channel": "lab"}, "reason": "destination fixed"}
    dry = post(admin, "/api/v1/dead-letters/replay", Role.OPERATOR, {**action, "dry_run": True})
    assert dry.json() == {"count": 3, "ids": dead}
    unconfirmed = post(admin, "/api/v1/dead-letters/replay", Role.OPERATOR, action)
    assert unconfirmed.status_code == 409
    no_reason = {**action, "reason": " ", "confirm_count": 3}
    assert post(admin, "/api/v1/dead-letters/replay", Role.OPERATOR, no_reason).status_code == 400
    done = post(admin, "/api/v1/dead-letters/replay", Role.OPERATOR, {**action, "confirm_count": 3})
    assert done.json() == {"replayed": dead, "skipped": []}
    with db.connect() as conn:
        states = conn.execute(select(messages.c.state).where(messages.c.id.in_(dead))).scalars()
        assert set(states) == {"received"}
    [row] = audit_rows(db, "replay")
    assert (row["actor"], row["reason"]) == ("token:operator-token", "destination fixed")
    assert json.loads(str(row["ids"])) == dead


def test_discard_by_ids_ends_the_dead_letter_with_who_and_why(admin: Admin, db: Engine) -> None:
    dead = seed.message(db, "X1", state=State.DEAD_LETTERED, error_code="x")
    body = {"ids": [dead], "reason": "test message"}
    assert post(admin, "/api/v1/dead-letters/discard", Role.OPERATOR, body).json() == {
        "discarded": [dead],
        "skipped": [],
    }
    with db.connect() as conn:
        state = conn.execute(select(messages.c.state).where(messages.c.id == dead)).scalar()
        actor = conn.execute(select(events.c.actor).where(events.c.message_id == dead)).scalar()
    assert (state, actor) == ("discarded", "token:operator-token")
    assert audit_rows(db, "discard")[0]["reason"] == "test message"


def test_reviews_show_their_age_and_resolving_one_is_audited(admin: Admin, db: Engine) -> None:
    mid = seed.message(db, "R1", state=State.REVIEW)
    with db.begin() as conn:
        review.open_review(
            conn, mid, "lab", IdentityConflict("traits differ", [1]), datetime.now(UTC)
        )
    [open_] = get(admin, "/api/v1/identity/reviews", Role.VIEWER).json()
    assert open_["message_id"] == mid and open_["age_seconds"] >= 0
    path = f"/api/v1/identity/reviews/{open_['id']}/resolve"
    assert post(admin, path, Role.VIEWER, {"reason": "no"}).status_code == 403
    done = post(admin, path, Role.OPERATOR, {"reason": "wrong patient at the source"})
    assert done.json()["status"] == "rejected"
    [row] = audit_rows(db, "resolve")
    assert row["reason"] == "wrong patient at the source"
    assert get(admin, "/api/v1/identity/reviews", Role.VIEWER).json() == []


def test_the_trait_comparison_is_for_operators_and_each_view_is_audited(
    admin: Admin, db: Engine
) -> None:
    pid = seed.patient(db)
    mid = seed.message(db, "C1", state=State.REVIEW)
    with db.begin() as conn:
        review.open_review(conn, mid, "lab", IdentityConflict("differ", [pid]), datetime.now(UTC))
    [r] = get(admin, "/api/v1/identity/reviews", Role.VIEWER).json()
    path = f"/api/v1/identity/reviews/{r['id']}/comparison"
    assert get(admin, path, Role.VIEWER).status_code == 403
    answer = get(admin, path, Role.OPERATOR).json()
    assert [c["title"] for c in answer["columns"]] == ["message", f"patient {pid}"]
    assert [row["ids"] for row in audit_rows(db, "view_traits")] == [json.dumps([r["id"]])]


def test_held_messages_are_listed_oldest_first_with_their_age(admin: Admin, db: Engine) -> None:
    first = seed.message(db, "W1", state=State.HELD)
    second = seed.message(db, "W2", state=State.HELD)
    held = get(admin, "/api/v1/identity/held", Role.VIEWER).json()
    assert [h["id"] for h in held] == [first, second]
    assert all(h["age_seconds"] >= 0 for h in held)


def test_the_audit_trail_is_listed_newest_first_and_the_database_refuses_to_edit_it(
    admin: Admin, db: Engine
) -> None:
    mid = seed.message(db, "A1")
    get(admin, f"/api/v1/messages/{mid}/payload", Role.OPERATOR)
    get(admin, f"/api/v1/messages/{mid}/payload", Role.ADMIN)
    listed = get(admin, "/api/v1/audit", Role.OPERATOR).json()
    assert [e["actor"] for e in listed[:2]] == ["token:admin-token", "token:operator-token"]
    for sql in ("UPDATE admin_audit SET reason = 'x'", "DELETE FROM admin_audit"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as conn:
            conn.execute(text(sql))
    assert len(audit_rows(db, "view_payload")) == 2


def test_api_tokens_are_stored_only_as_hashes(admin: Admin, db: Engine) -> None:
    with db.connect() as conn:
        stored = " ".join(str(v) for r in conn.execute(select(tokens)) for v in r)
    for token in admin.tokens.values():
        assert token not in stored
