"""``aiguillage send``: splitting files into messages, and a clear error when nobody listens."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli.main import app
from engine.cli.send import split_file
from tests.e2e.engine_process import free_port

MSH = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|{n}|P|2.5"


def test_a_file_is_split_at_each_msh_whatever_the_line_endings() -> None:
    two = MSH.replace(b"{n}", b"1") + b"\nPID|1\r\n" + MSH.replace(b"{n}", b"2") + b"\rPID|2\n"
    messages = split_file(b"\xef\xbb\xbf" + two)
    assert messages == [
        MSH.replace(b"{n}", b"1") + b"\rPID|1",
        MSH.replace(b"{n}", b"2") + b"\rPID|2",
    ]


def test_sending_to_a_port_nobody_listens_on_says_so_and_exits_2(tmp_path: Path) -> None:
    msg = tmp_path / "m.hl7"
    msg.write_bytes(MSH.replace(b"{n}", b"1"))
    port = free_port()
    result = CliRunner().invoke(app, ["send", "--port", str(port), str(msg)])
    assert result.exit_code == 2
    assert f"cannot send to 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
