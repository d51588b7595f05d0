"""Summarise py-spy collapsed stacks (``--format raw --threads``) per thread.

``python bench/profile_summary.py bench/results/<stamp>-py-spy.txt [--top 25] [--idle]``

For each thread: samples, the top functions by self time and by inclusive time (share of that
thread's samples). Idle samples (py-spy only records active ones unless ``--idle`` was given
to it) are what is left to the wall clock.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="only stacks containing this text")
    args = parser.parse_args()
    threads: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    selfs: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    for line in args.stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit() or (args.match and args.match not in stack):
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        thread = re.sub(r"\(0x[0-9a-fA-F]+\)|\(\d+\)", "", thread).strip()
        names = [short(f) for f in frames[1:]]
        totals[thread] += count
        for name in set(names):
            threads[thread][name] += count
        if names:
            selfs[thread][names[-1]] += count
    grand = sum(totals.values())
    for thread, total in totals.most_common():
        print(f"\n=== {thread}: {total} samples ({100 * total / grand:.1f}% of all)")
        print("  -- self --")
        for name, n in selfs[thread].most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {name}")
        print("  -- inclusive --")
        for name, n in threads[thread].most_common(args.top):
            print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
