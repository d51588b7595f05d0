"""Hostile payloads for bench/security.py: oversized CDA documents, an MDM^T02 carrying one, and
mutations of the real HL7 v2 samples in tests/samples/hl7v2.

Everything is deterministic (seeded): the same arguments always give the same bytes.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples" / "hl7v2"
CDA_OPEN = b'<ClinicalDocument xmlns="urn:hl7-org:v3">'
CDA_CLOSE = b"</ClinicalDocument>"
#: One element of the flat documents: 10 bytes.
ELEMENT = b'<a b="1"/>'


def flat_cda(elements: int, comment: str) -> bytes:
    """A CDA root with ``elements`` empty children and no id (refused), made distinct by
    ``comment`` so that the engine does not take it for a resend."""
    return CDA_OPEN + f"<!-- {comment} -->".encode() + ELEMENT * elements + CDA_CLOSE


def deep_cda(elements: int, depth: int, comment: str) -> bytes:
    """A flat CDA plus one chain of ``depth`` nested elements (past the engine's depth limit)."""
    chain = b"<c>" * depth + b"</c>" * depth
    return CDA_OPEN + f"<!-- {comment} -->".encode() + ELEMENT * elements + chain + CDA_CLOSE


def mdm_t02(cda: bytes, control_id: str) -> bytes:
    """An MDM^T02 whose OBX-5 is ``cda`` in base64, as a laboratory sends a report."""
    data = base64.b64encode(cda).decode()
    return "\r".join(
        (
            f"MSH|^~\\&|BENCH|LAB|AIGUILLAGE|HOSP|20250101120000||MDM^T02^MDM_T02|{control_id}"
            "|P|2.5|||||FRA|UNICODE UTF-8",
            "EVN||20250101120000",
            "PID|1||BENCH1^^^CHU-X^PI||BENCH^ATTACK^^^^^L||19700101|M",
            "TXA|1|11502-2|TEXT|20250101120000",
            f"OBX|1|ED|11502-2^CR d'examens biologiques^LN||^text^XML^Base64^{data}||||||F",
        )
    ).encode()


def sample_messages() -> list[bytes]:
    """Every message of the HL7 v2 samples, segments separated by CR."""
    messages: list[bytes] = []
    for path in sorted(SAMPLES.rglob("*.hl7")):
        text = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        current: list[bytes] = []
        for segment in text.split(b"\r"):
            if segment.startswith(b"MSH") and current:
                messages.append(b"\r".join(current))
                current = []
            if (segment.startswith(b"MSH") or current) and segment.strip():
                current.append(segment)
        if current:
            messages.append(b"\r".join(current))
    return messages


def with_control_id(message: bytes, control_id: str) -> bytes:
    """``message`` with MSH-10 replaced, so that no mutation is taken for a resend."""
    head, _, rest = message.partition(b"\r")
    sep = head[3:4] or b"|"
    fields = head.split(sep)
    if len(fields) > 9:
        fields[9] = control_id.encode()
    return sep.join(fields) + (b"\r" + rest if rest else b"")


Mutation = Callable[[bytes, random.Random], bytes]


def _flip(m: bytes, rng: random.Random) -> bytes:
    data = bytearray(m)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _truncate(m: bytes, rng: random.Random) -> bytes:
    return m[: rng.randint(1, max(1, len(m) - 1))]


def _swap_separators(m: bytes, rng: random.Random) -> bytes:
    swaps = ((b"|", b"^"), (b"^", b"|"), (b"\r", b"\n"), (b"\r", b""), (b"~", b"|"), (b"&", b"\\"))
    a, b = rng.choice(swaps)
    if rng.random() < 0.5:
        return m.replace(a, b)
    at = rng.randrange(len(m))
    return m[:at] + m[at:].replace(a, b, rng.randint(1, 5))


def _insert_control(m: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(m) + 1)
    return m[:at] + rng.choice((b"\x0b", b"\x1c", b"\x1c\r", b"\x0b\x0b", b"\x1c\r\x0b")) + m[at:]


def _msh_alone(m: bytes, rng: random.Random) -> bytes:
    body = m.partition(b"\r")[2] or b"PID|1||X"
    return rng.choice((b"MSH\r", b"MSH\r\r", b"MSH\n", b"MSH", b"MSH|", b"MSH|^~\\&\r")) + body


def _huge_field(m: bytes, rng: random.Random) -> bytes:
    fields = m.split(b"|")
    at = rng.randrange(1, len(fields)) if len(fields) > 1 else 0
    fields[at] = rng.choice(b"AZ9^~&\\").to_bytes(1, "big") * rng.randint(64 * 1024, 2 << 20)
    return b"|".join(fields)


#: (name, weight, mutation): huge fields are rare so that the run stays a few MB per second.
MUTATIONS: tuple[tuple[str, int, Mutation], ...] = (
    ("byte_flip", 30, _flip),
    ("truncation", 20, _truncate),
    ("separator_swap", 20, _swap_separators),
    ("inserted_vt_fs", 15, _insert_control),
    ("msh_alone", 12, _msh_alone),
    ("huge_field", 3, _huge_field),
)


def mutated(count: int, seed: int = 2575) -> list[tuple[str, bytes]]:
    """``count`` (mutation name, message) pairs drawn from the samples, each with its own
    MSH-10 before it is mutated."""
    rng = random.Random(seed)
    samples = sample_messages()
    names = [name for name, _, _ in MUTATIONS]
    weights = [w for _, w, _ in MUTATIONS]
    by_name = {name: fn for name, _, fn in MUTATIONS}
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        name = rng.choices(names, weights)[0]
        message = with_control_id(rng.choice(samples), f"FZ{seed}-{i}")
        out.append((name, by_name[name](message, rng)))
    return out
