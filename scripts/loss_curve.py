"""A training log's loss curve as a table: the median of each window of steps.

    python scripts/loss_curve.py docs/training/paintings.log.jsonl [--window 250] \
        [--fields loss content style]

Medians, not means: a step's loss depends on its batch (crop, photo, style), and one hard
batch would move a mean. The last column is the change against the previous window, which
is what says whether more steps of the same recipe still buy anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def windows(records: list[dict], window: int, fields: list[str]) -> list[tuple]:
    """(first step, last step, {field: median or None}) per window of `window` logged steps;
    a field missing from a window (a term added by a later run) is None there."""
    rows = []
    for start in range(0, len(records), window):
        chunk = records[start:start + window]
        medians = {}
        for field in fields:
            values = [r[field] for r in chunk if field in r]
            medians[field] = float(np.median(values)) if values else None
        rows.append((chunk[0]["step"], chunk[-1]["step"], medians))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--window", type=int, default=250, help="logged steps per row")
    parser.add_argument("--fields", nargs="+", default=["loss"])
    args = parser.parse_args()
    records = []
    for line in args.log.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    if not records:
        sys.exit(f"{args.log}: no step records")
    rows = windows(records, args.window, args.fields)
    print("| steps | " + " | ".join(f"median {f}" for f in args.fields) + " | change |")
    print("| --- |" + " --- |" * (len(args.fields) + 1))
    first = args.fields[0]
    for i, (start, end, medians) in enumerate(rows):
        values = " | ".join("-" if medians[f] is None else f"{medians[f]:.3g}"
                            for f in args.fields)
        previous = rows[i - 1][2][first] if i else None
        change = (f"{medians[first] / previous - 1:+.1%}"
                  if previous and medians[first] is not None else "-")
        print(f"| {start}-{end} | {values} | {change} |")


if __name__ == "__main__":
    main()
