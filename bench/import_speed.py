"""Import throughput: the shared corpus replicated to ~100,000 issues, into a new store.

    .venv/bin/python bench/import_speed.py [--copies 34]

Baseline, measured in the same run on the same file: the floor of any importer — stream the
gzipped JSON Lines, parse each line with orjson and executemany the raw text into a one-column
SQLite table in one transaction. The ratio says what normalisation, validation, upserts and
indexes cost on top of merely reading and storing the bytes.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bugatlas import Store, import_paths

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"


def replicate(copies: int, out: Path) -> int:
    """Copies of the corpus with issue numbers shifted so every copy is a distinct issue."""
    lines = gzip.open(CORPUS, "rb").read().splitlines()
    n = 0
    with gzip.open(out, "wb", compresslevel=1) as fh:
        for c in range(copies):
            for line in lines:
                rec = orjson.loads(line)
                rec["number"] += c * 1_000_000
                fh.write(orjson.dumps(rec) + b"\n")
                n += 1
    return n


def baseline(path: Path, db: Path) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE raw (doc TEXT)")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    with gzip.open(path, "rb") as fh:
        batch = []
        for line in fh:
            orjson.loads(line)
            batch.append((line.decode(),))
            if len(batch) == 2000:
                conn.executemany("INSERT INTO raw VALUES (?)", batch)
                batch = []
        conn.executemany("INSERT INTO raw VALUES (?)", batch)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=34)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "replicated.jsonl.gz"
        n = replicate(args.copies, data)
        t_base = baseline(data, tmp / "baseline.db")
        store = Store(tmp / "bench.db")
        t0 = time.perf_counter()
        import_paths(store, [data], progress=False)
        t_ours = time.perf_counter() - t0
        assert store.count_issues() == n
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        size = (tmp / "bench.db").stat().st_size
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"issues: {n}")
    print(f"bugatlas import: {t_ours:.2f} s = {n / t_ours:,.0f} issues/s")
    print(f"baseline (parse + store raw text only): {t_base:.2f} s = {n / t_base:,.0f} issues/s")
    print(f"ratio bugatlas/baseline throughput: {t_base / t_ours:.2f}")
    print(f"store size: {size / 1e6:.1f} MB = {size / n / 1024:.2f} KiB per issue "
          f"(corpus gzipped: {CORPUS.stat().st_size / 2997 / 1024:.2f} KiB per issue)")
    print(f"peak RSS of the process: {rss_mb:.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
