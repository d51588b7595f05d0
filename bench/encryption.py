"""Encryption at rest benchmark: document filing throughput with and without the record
store's encryption (AES-256-GCM, ``engine.store.crypto``), in the same run.

The filing is bench/documents.py's ``alone`` step: the 135 KB CR-BIO N3 sample (a distinct
document id per document), ``read_document`` (parse, XSD "cisis", CI-SIS header rules),
the level-3 extraction (``document_entries``, the transform stage's), ``check_same_patient``
and ``store_document`` in one committed
transaction per document, on a fresh SQLite database with channels.yaml's durability, the
patient registered by an ADT^A28. ``clear``: no keyring (key_id NULL, bytes as sent);
``encrypted``: a keyring attached to the engine (every CDA sealed). Each run files
``--documents`` documents both ways, each way into its own fresh database, interleaved: every
document is filed clear and encrypted one after the other, which goes first alternating, so
that the noise of a shared machine falls on both ways alike. A way's rate is its documents
over its own filing time.

Also, ``--light``: the same without the XSD and CI-SIS header checks (parse, header,
extraction, store), where the seal is a larger share of the work: the worst case here.
And ``seal_us`` / ``open_us``: the seal and the open of the sample alone, per document.

Target (the issue): encryption costs <= 10% of document filing throughput, i.e.
encrypted / clear >= 0.90. Medians of ``--runs`` runs; the ratio from the medians and, as a
check, the median of each run's own ratio.

``python bench/encryption.py [--runs 3] [--documents 200] [--light]``. Progress on stderr;
JSON on stdout, also saved to bench/results/<timestamp>-encryption.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import documents as bd  # noqa: E402

from engine import logs  # noqa: E402
from engine.cda.document import read_document  # noqa: E402
from engine.hl7v2.embedded_documents import DocumentRecord  # noqa: E402
from engine.security.keys import Keyring, new_key  # noqa: E402
from engine.store import crypto  # noqa: E402
from engine.store.cda_filing import check_same_patient, store_document  # noqa: E402
from engine.store.ownership import Filer  # noqa: E402
from engine.transforms.map_cda_entries import document_entries  # noqa: E402

TARGET = 0.90
WAYS = ("clear", "encrypted")


def filing(docs: Sequence[bytes], warmup: bytes, light: bool) -> dict[str, dict[str, float]]:
    """Each document filed both ways, clear and encrypted, into two fresh databases, the way
    that goes first alternating from document to document: the machine's drift (other work
    starting or stopping) falls on both ways alike. Per way: docs/s over its own filing time,
    and p50/p99."""
    checks: dict[str, Any] = {} if light else {"xsd": "cisis", "cisis_header": True}
    filer = Filer("bench")
    with bd.store_database() as clear, bd.store_database() as encrypted:
        crypto.attach(encrypted[0], Keyring([new_key()]))
        stores = {"clear": clear, "encrypted": encrypted}

        def one(way: str, i: int, data: bytes) -> float:
            db, patient_id, sender = stores[way]
            t0 = time.perf_counter()
            record = DocumentRecord(content=data, action="initial", obx="1")
            with db.begin() as conn:
                document = read_document(record, **checks)
                check_same_patient(conn, patient_id, sender, [document])
                entries = document_entries(document.root)
                now = datetime.now(UTC)
                store_document(conn, patient_id, i + 2, document, entries, now, filer)
            return time.perf_counter() - t0

        for way in WAYS:  # untimed: schema compiled, first statements
            one(way, len(docs), warmup)
        latencies: dict[str, list[float]] = {way: [] for way in WAYS}
        for i, data in enumerate(docs):
            for way in WAYS if i % 2 == 0 else WAYS[::-1]:
                latencies[way].append(one(way, i, data))
        for way, (db, _, _) in stores.items():
            with db.connect() as conn:
                counts = conn.exec_driver_sql(
                    "SELECT count(*), count(key_id) FROM store_documents"
                ).one()
            sealed = len(docs) + 1 if way == "encrypted" else 0
            if tuple(counts) != (len(docs) + 1, sealed):
                raise RuntimeError(f"{way}: (rows, sealed) {tuple(counts)}, not {sealed}")
    return {way: bd.summary(len(docs), sum(ls), ls) for way, ls in latencies.items()}


def seal_cost(sample: bytes, count: int = 200) -> dict[str, float]:
    """Microseconds to seal and to open the sample alone (median of ``count``)."""
    ring = Keyring([new_key()])
    aad = crypto.document_aad("1.2.250.1.213.1.1.1.55.2024.9.1", 1)
    seal, open_ = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        key, blob = crypto.seal_with(ring, sample, aad)
        t1 = time.perf_counter()
        if crypto.unseal_with(ring, key, blob, aad, "bench") != sample:
            raise RuntimeError("the sample does not open back to itself")
        seal.append(t1 - t0)
        open_.append(time.perf_counter() - t1)
    return {
        "seal_us": statistics.median(seal) * 1e6,
        "open_us": statistics.median(open_) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--documents", type=int, default=200, help="per way and run")
    parser.add_argument("--light", action="store_true", help="without XSD and header checks")
    args = parser.parse_args()
    logs.configure("warning")
    template = bd.SAMPLE.read_bytes()
    numbers = bd.Numbers()
    runs: list[dict[str, float]] = []
    for index in range(args.runs):
        out: dict[str, float] = {}
        docs = [bd.document(template, n) for n in numbers.take(args.documents)]
        warm = bd.document(template, numbers.take(1)[0])
        for way, result in filing(docs, warm, args.light).items():
            out.update({f"{way}_{k}": v for k, v in result.items()})
            bd.log(
                f"run {index + 1}: {way}: {result['docs_per_s']:,.1f} docs/s, "
                f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms"
            )
        out["ratio"] = out["encrypted_docs_per_s"] / out["clear_docs_per_s"]
        out.update(seal_cost(template))
        runs.append(out)
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = medians["encrypted_docs_per_s"] / medians["clear_docs_per_s"]
    report = {
        "benchmark": "encryption",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "document_bytes": len(template),
        "documents_per_way_and_run": args.documents,
        "checks": "none (light)" if args.light else "xsd cisis + CI-SIS header",
        "durability": bd.configured_durability(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "medians": {k: round(v, 3) for k, v in medians.items()},
        "ratio_encrypted_to_clear": {
            "value": round(ratio, 3),
            "median_of_run_ratios": round(medians["ratio"], 3),
            "target": f">= {TARGET:g} (encryption costs <= 10% of filing throughput)",
            "met": bool(ratio >= TARGET),
        },
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }
    text = json.dumps(report, indent=2)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results / f"{stamp}-encryption.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
