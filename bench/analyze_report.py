"""Full analysis + report on the shared corpus replicated to ~100,000 labelled issues.

    .venv/bin/python bench/analyze_report.py [--copies 34] [--seed 0]

Set-up (not timed): the shared corpus (2,997 issues) is imported ``copies`` times with shifted
issue numbers; every issue gets liu2025 labels (symptom, root cause(s), component(s), phase,
unexpected-output type) copied from a Liu et al. bug drawn at random (seeded), so the labels
follow the published joint distribution. The issues keep their real dates, states, comments,
maintainers' labels and author associations, so the time and maintenance analyses have work.

Timed, in the same run:
  baseline  — load the two frames every analysis starts from (issues and labels tables read
              into pandas with pd.read_sql_query), nothing else;
  bugatlas  — build_report(): load the study, every analysis (distributions at every level,
              per-group tables, cross-tabs, diagnostics, chi-square tests, lifecycle, Sankey
              flows, monthly trends, maintenance with Kaplan-Meier, labels, authors), figures,
              HTML (plotly inlined), Markdown, CSV and LaTeX.
Target: bugatlas under 30 s.
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from bugatlas import Issue, Label, Store, import_paths
from bugatlas.report import build_report

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CORPUS = SHARED / "serving-issues-2025.jsonl.gz"
LIU = SHARED / "liu2025" / "dataset.csv"
WORK = ROOT / "bench" / ".work" / "analyze"


def liu_label_sets(work: Path) -> list[list[tuple[str, str]]]:
    with Store(work / "liu.db") as s:
        import_paths(s, [LIU], progress=False)
        sets: dict[tuple[str, int], list[tuple[str, str]]] = {}
        for lab in s.iter_labels("liu2025"):
            sets.setdefault((lab.repo, lab.issue_number), []).append((lab.dimension, lab.value))
    return list(sets.values())


def build_store(db: Path, copies: int, seed: int) -> int:
    lines = gzip.open(CORPUS, "rb").read().splitlines()
    sets = liu_label_sets(db.parent)
    rng = np.random.default_rng(seed)
    n = 0
    with Store(db) as store:
        for c in range(copies):
            issues, labels = [], []
            picks = rng.integers(0, len(sets), size=len(lines))
            for line, pick in zip(lines, picks, strict=True):
                rec = orjson.loads(line)
                number = rec["number"] + c * 1_000_000
                issues.append(Issue(
                    repo=rec["repo"], number=number, title=rec.get("title"), body=None, state=rec.get("state"),
                    labels=rec.get("labels") or [], author_association=rec.get("author_association"),
                    created_at=rec.get("created_at"), closed_at=rec.get("closed_at"),
                    comments_count=rec.get("comments"), html_url=rec.get("html_url"), source="bench"))  # fmt: skip
                labels += [Label.model_construct(repo=rec["repo"].lower(), issue_number=number, taxonomy="liu2025",
                                                 dimension=d, value=v, source_kind="model", source="bench:synthetic",
                                                 record="", confidence=None, evidence=None, run_id=None)
                           for d, v in sets[pick]]  # fmt: skip
            store.upsert_issues(issues)
            store.add_labels(labels)
            n += len(issues)
    return n


def baseline(db: Path) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with Store(db) as s:
        pd.read_sql_query("SELECT * FROM issues WHERE is_reference = 0", s.conn)
        pd.read_sql_query("SELECT repo, issue_number, record, dimension, value FROM labels WHERE taxonomy = 'liu2025'", s.conn)
    return time.perf_counter() - t0, time.process_time() - c0


def full(db: Path, out: Path) -> tuple[float, float, dict]:
    t0, c0 = time.perf_counter(), time.process_time()
    with Store(db) as s:
        r = build_report(s, out, taxonomy="liu2025", audit=False)
    return time.perf_counter() - t0, time.process_time() - c0, r.as_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=34)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the store for another run")
    args = ap.parse_args()
    if not CORPUS.exists():
        sys.exit(f"missing {CORPUS} (../shared/data beside the repository)")
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / f"bench-{args.copies}-{args.seed}.db"
    if not db.exists():
        t = time.perf_counter()
        n = build_store(db, args.copies, args.seed)
        print(f"set-up: {n:,} labelled issues in {time.perf_counter() - t:.1f}s (not timed)")
    with Store(db) as s:
        n = s.count_issues(include_references=False)
        nl = int(s.conn.execute("SELECT COUNT(*) FROM labels WHERE taxonomy='liu2025'").fetchone()[0])
    base, base_cpu = baseline(db)
    took, cpu, info = full(db, WORK / "report")
    load = os.getloadavg()[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    html_mb = (WORK / "report" / "index.html").stat().st_size / 1e6
    print(f"issues: {n:,}  labels: {nl:,}")
    print(f"baseline (load frames): {base:.2f}s wall, {base_cpu:.2f}s CPU")
    print(f"bugatlas (analysis + report): {took:.2f}s wall, {cpu:.2f}s CPU  ratio {took / base:.1f}x wall, "
          f"{cpu / base_cpu:.1f}x CPU  target < 30s: {'met' if took < 30 else 'MISSED'} (load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"report: {info['figures']} figures, {info['tables']} tables, {info['latex']} LaTeX, index.html {html_mb:.1f} MB; peak RSS {rss:.0f} MiB")
    if not args.keep:
        db.unlink()
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        shutil.rmtree(WORK / "report", ignore_errors=True)


if __name__ == "__main__":
    main()
