"""The console's pages on a real socket (httpx with a session cookie): what each role sees,
the filters and pages of the browser, payloads beside their transformed forms, dead-letter
and review actions with their reasons and audit rows, the dashboard's tiles and sparklines."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from engine.admin.roles import Role
from engine.admin.tables import audit
from engine.errors import IdentityConflict
from engine.journal import transformed
from engine.journal.message_tables import State, messages
from engine.pipeline.identify import review
from tests.integration import admin_seed as seed
from tests.integration.admin_harness import Admin, serve
from tests.integration.test_admin_console import csrf_of, signed_in

SignIn = Callable[[Admin, Role], httpx.Client]
PAGES = ("/", "/messages", "/messages/1", "/dead-letters", "/reviews", "/held", "/audit")


@pytest.fixture
def admin(db: Engine) -> Iterator[Admin]:
    with serve(db) as running:
        yield running


@pytest.fixture
def as_() -> Iterator[SignIn]:
    clients: list[httpx.Client] = []

    def open_as(admin: Admin, role: Role) -> httpx.Client:
        client = httpx.Client(base_url=admin.url, timeout=10)
        clients.append(client)
        assert signed_in(client, role.value).status_code == 303
        return client

    yield open_as
    for c in clients:
        c.close()


def audit_rows(db: Engine, action: str) -> list[dict[str, object]]:
    with db.connect() as conn:
        rows = conn.execute(select(audit).where(audit.c.action == action).order_by(audit.c.id))
        return [dict(r._mapping) for r in rows]


def state_of(db: Engine, message_id: int) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(select(messages.c.state).where(messages.c.id == message_id)).scalar()
        )


def ids_listed(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td><a href="/messages/(\d+)">', page)]


def test_every_page_sends_a_visitor_without_a_session_to_the_login(admin: Admin) -> None:
    for path in PAGES:
        answer = httpx.get(admin.url + path)
        assert (answer.status_code, answer.headers["location"]) == (303, "/login"), path


def test_a_viewer_sees_metadata_but_no_payload_no_patient_and_no_audit_trail(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    mid = seed.message(db, "V1", state=State.DEAD_LETTERED, error_code="no_route")
    viewer = as_(admin, Role.VIEWER)
    page = viewer.get(f"/messages/{mid}").text
    assert "V1" in page and "no_route" in page  # metadata: control id, error
    assert "PID" not in page and "PAT-TROIS" not in page and "000003" not in page
    assert "Payloads are shown to operators and admins only" in page
    assert 'name="reason"' not in page  # no replay form
    assert audit_rows(db, "view_payload") == []
    assert 'name="patient"' not in viewer.get("/messages").text
    assert viewer.get("/messages", params={"patient": seed.INS}).status_code == 403
    assert viewer.get("/audit").status_code == 403
    assert 'type="checkbox"' not in viewer.get("/dead-letters").text


def test_an_operator_sees_the_raw_segments_beside_the_transformed_form_and_the_view_is_audited(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    mid = seed.message(db, "T1")
    with db.begin() as conn:
        sent = b"MSH|^~\\&|AIG|X|DPI|CHU-X|20240306||ORU^R01|T1|P|2.5\rPID|1||IPP-OUT^^^DPI"
        transformed.record(conn, mid, {"dpi": sent}, datetime.now(UTC))
    page = as_(admin, Role.OPERATOR).get(f"/messages/{mid}").text
    assert '<span class="seg">PID</span>' in page
    assert '<span class="fld" title="PID-5">PAT-TROIS^DOMINIQUE</span>' in page
    assert '<span class="fld" title="MSH-9">ORU^R01^ORU_R01</span>' in page
    assert "sent to dpi" in page and "IPP-OUT^^^DPI" in page
    [row] = audit_rows(db, "view_payload")
    assert (row["actor"], json.loads(str(row["ids"]))) == ("user:operator", [mid])


def test_the_browser_filters_by_channel_state_time_and_ins_and_pages_newest_first(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    seed.patient(db)
    old = seed.message(db, "OLD", received_at=datetime.now(UTC) - timedelta(days=2))
    mine = seed.message(db, "P1", state=State.DEAD_LETTERED, error_code="no_route")
    other = seed.message(db, "Q1", channel="quiet", patient_key="999^ELSE")
    bulk = [seed.message(db, f"B{n}", patient_key=None) for n in range(55)]
    op = as_(admin, Role.OPERATOR)
    assert ids_listed(op.get("/messages", params={"channel": "quiet"}).text) == [other]
    dead = op.get("/messages", params={"state": "dead_lettered"}).text
    assert ids_listed(dead) == [mine]
    assert ids_listed(op.get("/messages", params={"patient": seed.INS}).text) == [mine, old]
    recent = ids_listed(op.get("/messages", params={"patient": seed.INS, "since": "1d"}).text)
    assert recent == [mine]
    first = op.get("/messages")
    assert ids_listed(first.text) == sorted(bulk, reverse=True)[:50]
    older = re.search(r'href="(/messages\?before_id=\d+)" rel="next"', first.text)
    assert older is not None
    second = ids_listed(op.get(older.group(1)).text)
    assert second == [*sorted(bulk, reverse=True)[50:], other, mine, old]
    refused = op.get("/messages", params={"since": "last tuesday"})
    assert refused.status_code == 400 and "give 30m, 2h, 1d" in refused.text


def test_a_dead_letter_is_replayed_from_its_page_only_with_a_reason_and_the_audit_shows_it(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    mid = seed.message(db, "D1", state=State.DEAD_LETTERED, error_code="no_route")
    op = as_(admin, Role.OPERATOR)
    token = csrf_of(op.get(f"/messages/{mid}").text)
    form = {"csrf_token": token, "ids": str(mid), "action": "replay", "back": f"/messages/{mid}"}
    without = op.post("/dead-letters/selected", data={**form, "reason": "  "})
    assert without.status_code == 400 and "a reason is required" in without.text
    forged = op.post("/dead-letters/selected", data={**form, "csrf_token": "x", "reason": "r"})
    assert forged.status_code == 403
    assert state_of(db, mid) == State.DEAD_LETTERED
    done = op.post("/dead-letters/selected", data={**form, "reason": "route fixed"})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/messages/{mid}?")
    assert state_of(db, mid) == State.RECEIVED
    trail = op.get("/audit", params={"action": "replay"}).text
    assert "route fixed" in trail and "user:operator" in trail and str(mid) in trail


def test_a_bulk_discard_takes_the_dry_run_count_and_refuses_a_count_that_moved(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    ids = [seed.message(db, f"X{n}", state=State.DEAD_LETTERED, error_code="bad") for n in range(3)]
    seed.message(db, "Y", state=State.DEAD_LETTERED, error_code="other")
    op = as_(admin, Role.OPERATOR)
    dry = op.get("/dead-letters/bulk", params={"error_code": "bad"}).text
    assert '<strong id="count">3</strong>' in dry
    form = {"csrf_token": csrf_of(dry), "error_code": "bad", "action": "discard", "reason": "test"}
    moved = op.post("/dead-letters/bulk", data={**form, "confirm_count": "2"})
    assert moved.status_code == 409 and "takes 3 dead letter(s) now" in moved.text
    assert op.post("/dead-letters/bulk", data={**form, "confirm_count": "3"}).status_code == 303
    assert [state_of(db, i) for i in ids] == [State.DISCARDED] * 3
    [row] = audit_rows(db, "discard")
    assert json.loads(str(row["ids"])) == ids and row["reason"] == "test"


def test_a_review_shows_the_traits_side_by_side_and_is_resolved_with_a_reason(
    admin: Admin, db: Engine, as_: SignIn
) -> None:
    pid = seed.patient(db)
    mid = seed.message(db, "R1", state=State.REVIEW)
    with db.begin() as conn:
        review.open_review(
            conn, mid, "lab", IdentityConflict("traits differ", [pid]), datetime.now(UTC)
        )
        [opened] = review.reviews(conn)
    rid = opened["id"]
    assert f'href="/reviews/{rid}"' not in as_(admin, Role.VIEWER).get("/reviews").text
    op = as_(admin, Role.OPERATOR)
    assert f'href="/reviews/{rid}"' in op.get("/reviews").text
    page = op.get(f"/reviews/{rid}").text
    assert '<th scope="col">message</th>' in page and f"patient {pid}" in page
    assert page.count("PAT-TROIS") == 2 and f'value="{pid}"' in page
    assert len(audit_rows(db, "view_traits")) == 1
    form = {"csrf_token": csrf_of(page), "patient": "reject", "reason": "wrong patient"}
    resolved = op.post(f"/reviews/{rid}/resolve", data=form)
    assert resolved.status_code == 303
    assert f"review {rid}: rejected" in op.get(resolved.headers["location"]).text
    [row] = audit_rows(db, "resolve")
    assert row["reason"] == "wrong patient"
    assert f'href="/reviews/{rid}"' not in op.get("/reviews").text  # no longer open


def test_held_messages_are_listed_with_their_age(admin: Admin, db: Engine, as_: SignIn) -> None:
    hours_ago = datetime.now(UTC) - timedelta(hours=3, minutes=5)
    mid = seed.message(db, "H1", state=State.HELD, received_at=hours_ago)
    page = as_(admin, Role.VIEWER).get("/held").text
    assert f'<a href="/messages/{mid}">{mid}</a>' in page and "3 h 5 min" in page


def test_the_dashboard_has_a_tile_per_channel_with_its_counts_and_the_last_hours_sparkline(
    db: Engine, as_: SignIn
) -> None:
    now = datetime.now(UTC)
    for n, minutes in enumerate((1, 2, 2, 30)):
        seed.message(db, f"S{n}", received_at=now - timedelta(minutes=minutes))
    seed.message(db, "OLD", received_at=now - timedelta(hours=2))
    seed.message(db, "DL", state=State.DEAD_LETTERED, error_code="x")
    with serve(db) as admin:  # its first figures are taken at start: seeded first
        page = as_(admin, Role.VIEWER).get("/").text
        tiles_only = as_(admin, Role.VIEWER).get("/", params={"tiles": "1"}).text
    tiles = re.findall(r'<li class="tile (\w+)">\s*<h2><a href="[^"]+">(\w+)</a>', page)
    assert tiles == [("bad", "lab"), ("idle", "quiet")]  # a dead letter; no runtime here
    # The dead letter, received now, counts too: 5 in the hour, 2 in one minute at most.
    assert 'aria-label="lab, messages per minute: 5 in the hour, at most 2 a minute"' in page
    assert 'aria-label="quiet, messages per minute: 0 in the hour, at most 0 a minute"' in page
    points = re.search(r'<polyline class="line" points="([^"]+)"', page)
    assert points is not None and len(points.group(1).split()) == 60
    assert 'data-refresh="' in page and '<script src="/static/refresh.js"' in page
    assert "<html" not in tiles_only and tiles_only.count('class="tile ') == 2
