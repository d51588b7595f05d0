"""The HTTP source under abuse, against the real engine process: half-open connections stay
under the cap (defect 2), late headers and trickling bodies are cut at their timeouts, each peer
has its own cap; and requests refused before the journal: 415 for a media type that is not XML,
400 for an empty body, 429 past the junk budget, no API documentation (defect 9)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import hl7.client
import httpx
import pytest

from tests.e2e.engine_process import STARTED, EngineProcess, free_port
from tests.integration.identity_harness import adt, pid

pytestmark = pytest.mark.slow  # each test starts an engine process

HALF_OPEN = b"POST /documents HTTP/1.1\r\nHost: x\r\n"
CHANNELS = """
engine: {{database_url: "{url}", durability: normal, identity: {{accept_test_ins: true}}}}
channels:
  - name: adt
    source: {{type: mllp, port: {port}}}
    accept: ["ADT^*"]
    destinations: {{store: {{type: record_store}}}}
  - name: documents_http
    source:
      type: http
      port: {http_port}
      auth: none
      {options}
    accept: ["CDA^*"]
    destinations: {{store: {{type: record_store}}}}
"""

Start = Callable[..., "HttpEngine"]


class HttpEngine(EngineProcess):
    http_port: int = 0

    def post(
        self, body: bytes, content_type: str | None = "application/xml", path: str = "/documents"
    ) -> tuple[int, dict[str, str], bytes]:
        # httpx, not urllib: urllib leaves the socket of an error answer to the collector, whose
        # ResourceWarning (an error in these tests) then lands in whichever test runs next.
        headers = {"Content-Type": content_type} if content_type else {}
        url = f"http://127.0.0.1:{self.http_port}{path}"
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        return response.status_code, lower(response.headers.items()), response.content

    def descriptors(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def journaled(self) -> int:
        return int(self.scalar("SELECT count(*) FROM journal_messages"))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    def started(**options: object) -> HttpEngine:
        port, http_port = free_port(), free_port()
        url = f"sqlite:///{tmp_path / 'engine.db'}"
        text = CHANNELS.format(
            url=url,
            port=port,
            http_port=http_port,
            options="\n      ".join(f"{k}: {json.dumps(v)}" for k, v in options.items()),
        )
        (tmp_path / "channels.yaml").write_text(text)
        proc = HttpEngine(tmp_path / "channels.yaml", port, url, tmp_path / "log")
        proc.http_port = http_port
        proc.start()
        wait_for_port(http_port)  # opened after the MLLP port start() waits for
        time.sleep(0.2)  # the probe connection closed: not counted against the caps
        return proc

    yield started
    while STARTED:
        proc = STARTED.pop()
        if proc.alive():
            proc.kill()


def wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} never opened")


def lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers}


def half_open(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(HALF_OPEN)
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket, wait: float = 0.0) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):  # nothing yet: still open
        return False
    except OSError:  # reset
        return True


def test_half_open_connections_stay_under_the_cap_and_a_normal_post_is_still_served(
    start: Start,
) -> None:
    engine = start(max_connections=40, max_connections_per_peer=1000, header_timeout_seconds=60)
    before = engine.descriptors()
    socks = half_open(engine.http_port, 300)
    try:
        time.sleep(0.5)
        # Without the cap, each of the 300 held a descriptor until the process ran out.
        assert engine.descriptors() - before <= 40 + 5
        # The oldest were closed to admit the newest; a sender still gets its answer...
        assert sum(closed_by_server(s) for s in socks) >= 250
        status, _, body = engine.post(b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>")
        assert (status, json.loads(body)["code"]) == (422, "invalid_document")
        # ...and the other sources are not starved.
        with hl7.client.MLLPClient("127.0.0.1", engine.port) as client:
            assert b"MSA|AA" in client.send_message(adt("A28", pid("IPP1", "1"), "1"))
    finally:
        for sock in socks:
            sock.close()
    log = (engine.log).read_text()
    assert "Traceback" not in log
    assert log.count("http_idle_connection_closed") <= 2  # once per burst, the rest counted


def test_headers_that_never_complete_are_closed_at_the_header_timeout(start: Start) -> None:
    engine = start(header_timeout_seconds=0.5)
    with socket.create_connection(("127.0.0.1", engine.http_port), timeout=5) as sock:
        began = time.monotonic()
        for byte in HALF_OPEN:  # a slowloris: one byte every 50 ms never completes in time
            if closed_by_server(sock, 0.05):
                break
            sock.send(bytes([byte]))
        assert closed_by_server(sock, 3)
    assert time.monotonic() - began < 2.5
    assert engine.journaled() == 0


def test_a_trickling_body_is_cut_at_its_timeout_with_408_and_nothing_journaled(
    start: Start,
) -> None:
    engine = start(body_timeout_seconds=1)
    with socket.create_connection(("127.0.0.1", engine.http_port), timeout=5) as sock:
        began = time.monotonic()
        sock.sendall(
            b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\n"
            b"Content-Length: 104857600\r\n\r\n" + b"<" * 900
        )
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
        assert closed_by_server(sock, 3)
    assert time.monotonic() - began < 3  # not 70 s
    assert engine.journaled() == 0


def test_each_peer_is_capped_on_its_own(start: Start) -> None:
    engine = start(max_connections_per_peer=5, header_timeout_seconds=60)
    socks = half_open(engine.http_port, 10)
    try:
        time.sleep(0.3)
        assert sum(closed_by_server(s) for s in socks) == 5
        with socket.create_connection(
            ("127.0.0.1", engine.http_port), timeout=5, source_address=("127.0.0.2", 0)
        ) as other:
            other.sendall(
                b"POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                b"Content-Length: 3\r\n\r\n<a>"
            )
            assert other.recv(4096).startswith(b"HTTP/1.1 422")
    finally:
        for sock in socks:
            sock.close()


def test_requests_refused_before_the_journal_get_their_status_and_no_row(start: Start) -> None:
    engine = start()
    cda = b"<ClinicalDocument xmlns='urn:hl7-org:v3'/>"
    assert engine.post(cda, "image/png")[0] == 415
    assert engine.post(cda, None)[0] == 415  # no Content-Type: not guessed
    assert engine.post(cda, "application/x-www-form-urlencoded")[0] == 415  # curl's default
    assert engine.post(b"", "application/xml")[0] == 400
    for path in ("/openapi.json", "/docs", "/redoc"):
        url = f"http://127.0.0.1:{engine.http_port}{path}"
        assert httpx.get(url, timeout=5).status_code == 404
    assert engine.journaled() == 0
    # Media types a CDA may come as (refused as a document: not a refused request).
    for media in ("text/xml; charset=utf-8", "application/hl7-v3+xml", "application/cda+xml"):
        assert engine.post(cda, media)[0] == 422


def test_past_its_junk_budget_a_peer_gets_429_and_its_payloads_are_not_journaled(
    start: Start,
) -> None:
    engine = start(junk={"max_refused_per_minute": 3, "backoff_seconds": 30})
    statuses = [engine.post(b"<not-a-cda/>")[0] for _ in range(8)]
    assert statuses[:4] == [422] * 4  # within the budget, then the one that crossed it
    assert set(statuses[4:]) == {429}
    status, headers, _ = engine.post(b"<not-a-cda/>")
    assert status == 429
    assert 0 < int(headers["retry-after"]) <= 30
    assert engine.journaled() == 4
