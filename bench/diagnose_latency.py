"""Diagnose latency and index build time against a store of ~100,000 issues.

    .venv/bin/python bench/diagnose_latency.py [--copies 1,34] [--logs 200] [--json out.json]

For each size, the shared corpus (2,997 issues) is replicated COPIES times with shifted issue
numbers and imported into a new store. Measured:
- full `index build` time, a no-op rebuild, and an incremental build after 1,000 new issues;
- `diagnose()` per log in a warm process (parse, taxonomy prediction, hybrid search, resolution
  lookups of the 5 similar issues): median, p95, max over LOGS real corpus logs;
- the `bugatlas diagnose --json` command end to end (cold process, includes Python start-up);
- baseline, same run, same logs: unindexed search, a `LIKE '%message%'` scan of every issue body
  for the log's exception message (what grep-style search costs without an index).
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bugatlas import Store, import_paths
from bugatlas.diagnose import diagnose
from bugatlas.diagnose.index import SearchIndex
from bugatlas.diagnose.parse import extract_log, parse_log

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"


def replicate(copies: int, out: Path, offset: int = 0, limit: int | None = None) -> int:
    lines = gzip.open(CORPUS, "rb").read().splitlines()
    n = 0
    with gzip.open(out, "wb", compresslevel=1) as fh:
        for c in range(copies):
            for line in lines:
                if limit is not None and n >= limit:
                    return n
                rec = orjson.loads(line)
                rec["number"] += (c + offset) * 1_000_000
                fh.write(orjson.dumps(rec) + b"\n")
                n += 1
    return n


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_size(copies: int, n_logs: int, workdir: Path, reuse: bool = False) -> dict:
    db = workdir / f"x{copies}.db"
    build: dict = {}
    if reuse and db.exists():  # latency only, on a store a previous run built (--reuse)
        store = Store(db)
        n = store.count_issues(include_references=False)
    else:
        src = workdir / f"corpus-x{copies}.jsonl.gz"
        n = replicate(copies, src)
        store = Store(db)
        import_paths(store, [src], progress=False)
        ix = SearchIndex(store)
        t = time.perf_counter()
        full = ix.build(progress=sys.stderr.isatty())
        build["index_build_s"] = round(time.perf_counter() - t, 1)
        build["with_log"], build["signature_parsed"] = full.with_log, full.recognized
        t = time.perf_counter()
        ix.build()
        build["noop_rebuild_s"] = round(time.perf_counter() - t, 2)
        extra = workdir / f"extra-x{copies}.jsonl.gz"
        replicate(1, extra, offset=copies, limit=1000)
        import_paths(store, [extra], progress=False)
        t = time.perf_counter()
        inc = ix.build()
        build["incremental_1000_s"] = round(time.perf_counter() - t, 1)
        build["incremental_indexed"] = inc.indexed

    rng = random.Random(7)
    rows = store.conn.execute(
        "SELECT i.body FROM diagnose_docs d JOIN issues i ON i.repo = d.repo AND i.number = d.number "
        "WHERE d.has_log = 1 AND d.number < 1000000"
    ).fetchall()
    logs = [extract_log(b) for (b,) in rng.sample(rows, min(n_logs, len(rows)))]
    ix2 = SearchIndex(store)  # a fresh handle: the first query loads the model and vectors
    t = time.perf_counter()
    diagnose(logs[0], store, index=ix2, k=5)
    first_ms = 1000 * (time.perf_counter() - t)
    lat = []
    for log in logs:
        t = time.perf_counter()
        diagnose(log, store, index=ix2, k=5)
        lat.append(1000 * (time.perf_counter() - t))

    # Baseline: an unindexed LIKE scan for the exception message, on a subset (each is a full scan).
    base = []
    for log in logs[:20]:
        p = parse_log(log)
        needle = (p.message or log.strip().splitlines()[-1] if log.strip() else "error")[:60]
        t = time.perf_counter()
        store.conn.execute("SELECT repo, number FROM issues WHERE body LIKE ? LIMIT 5", (f"%{needle}%",)).fetchall()
        store.conn.execute("SELECT COUNT(*) FROM issues WHERE body LIKE ?", (f"%{needle}%",)).fetchone()
        base.append(1000 * (time.perf_counter() - t))

    log_file = workdir / "one.log"
    log_file.write_text(logs[1])
    cli = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bugatlas.cli", "diagnose", str(log_file), "--db", str(db), "--json"],
                       check=True, capture_output=True)
        cli.append(1000 * (time.perf_counter() - t))
    size_mb = sum(p.stat().st_size for p in workdir.glob(f"x{copies}.db*")) / 1e6
    store.close()
    return {
        "issues": n,
        **build,
        "first_query_ms": round(first_ms, 1),
        "diagnose_ms_median": round(statistics.median(lat), 1),
        "diagnose_ms_p95": round(pct(lat, 0.95), 1),
        "diagnose_ms_max": round(max(lat), 1),
        "cli_ms_median": round(statistics.median(cli), 1),
        "baseline_like_scan_ms_median": round(statistics.median(base), 1),
        "ratio_baseline_over_diagnose": round(statistics.median(base) / statistics.median(lat), 2),
        "store_and_cache_mb": round(size_mb, 1),
        "logs": len(logs),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", default="1,34")
    ap.add_argument("--logs", type=int, default=200)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--reuse", action="store_true", help="latency only, on stores a previous run left in --workdir")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    workdir = args.workdir or Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for copies in (int(c) for c in args.copies.split(",")):
        res = run_size(copies, args.logs, workdir, args.reuse)
        results.append(res)
        sys.stdout.write(orjson.dumps(res).decode() + "\n")
        sys.stdout.flush()
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
