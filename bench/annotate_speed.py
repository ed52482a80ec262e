"""Annotation speed: autosave latency through the real app, and the agreement report, on a
Cochran-sized liu2025 sample of the shared corpus (832 issues, two annotators).

    .venv/bin/python bench/annotate_speed.py [--saves 400]

Baselines, measured in the same run:
* autosave — the HTTP floor (the same server and client fetching a small static file), and a
  bare durable append: one INSERT of the same JSON into a one-table SQLite file
  in WAL mode, one transaction per save (what any append-only save costs without HTTP,
  sessions, CSRF, ownership checks and codebook validation);
* agreement — scikit-learn's ``cohen_kappa_score`` alone on label vectors already prepared
  for the same dimension/level views (the floor of computing the pairwise kappas), against
  our full report (reading the latest annotations from the store, mapping hierarchy levels,
  Cohen with confusion matrices, Fleiss, Krippendorff, per-category multi-label figures).
Targets: autosave p95 under 50 ms (the annotator never waits); the report under 2 s.
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from bugatlas import Store, import_paths
from bugatlas.annotate import agreement, assign, draw_sample, queue_for, save_annotation
from bugatlas.annotate.app import create_app
from bugatlas.annotate.work import latest_annotations
from bugatlas.taxonomy import load_codebook

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"


def serve(store):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not (server.started and server.servers):
        time.sleep(0.05)
    return server, t, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=400)
    args = ap.parse_args()
    cb = load_codebook("liu2025")
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "study.db")
        import_paths(store, [CORPUS], progress=False)
        s = draw_sample(store, "liu2025", seed=0)
        assign(store, s, ["alice", "bob"], k=2)
        leaves = {d: [c.name for c in cb.leaves(d)] for d in s.dimensions}

        def labels():
            return {d: [rng.choice(leaves[d])] for d in s.dimensions}

        # -- autosave through the app --------------------------------------------------
        server, thread, url = serve(store)
        c = httpx.Client(base_url=url, follow_redirects=True)
        tok = re.search(r'name="csrf" content="([^"]+)"', c.get("/").text).group(1)
        c.post("/login", data={"name": "alice", "csrf": tok})
        tok = re.search(r'name="csrf" content="([^"]+)"', c.get("/").text).group(1)
        queue = [q["assignment_id"] for q in queue_for(store, s, "alice")]
        bodies = [{"labels": labels(), "note": "n" * 80, "status": "draft"} for _ in range(args.saves)]
        lat = []
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            t = time.perf_counter()
            r = c.post(f"/api/a/{queue[i % len(queue)]}", json=body, headers={"X-CSRF-Token": tok})
            r.raise_for_status()
            lat.append(time.perf_counter() - t)
        app_total = time.perf_counter() - t0
        floor = []  # the same server and client answering a small static file: HTTP's own cost
        for _ in range(args.saves):
            t = time.perf_counter()
            c.get("/static/app.css").raise_for_status()
            floor.append(time.perf_counter() - t)
        server.should_exit = True
        thread.join()

        raw = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        raw.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, assignment INTEGER, doc TEXT)")
        base_lat = []
        t0 = time.perf_counter()
        for i, body in enumerate(bodies):
            t = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO a (assignment, doc) VALUES (?, ?)", (i, orjson.dumps(body).decode()))
            raw.execute("COMMIT")
            base_lat.append(time.perf_counter() - t)
        base_total = time.perf_counter() - t0

        # -- agreement on the whole sample ---------------------------------------------
        for who in ("alice", "bob"):
            for q in queue_for(store, s, who):
                save_annotation(store, s, q["assignment_id"], who, labels(), status="done", codebook=cb)
        t0 = time.perf_counter()
        report = agreement(store, s)  # first call in the process: imports statsmodels/pandas
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = agreement(store, s)  # as the owner page recomputes it
        ours = time.perf_counter() - t0
        rows = latest_annotations(store, s, done_only=True)
        by = {}
        for r in rows:
            by.setdefault(r["item_id"], {})[r["annotator"]] = r["labels"]
        views = []
        for d in s.dimensions:
            for li, _ in enumerate(cb.dimension(d).levels):
                def at(v, li=li, d=d):
                    p = cb.path(d, v)
                    return p[min(li, len(p) - 1)].name
                views.append(([" | ".join(sorted({at(v) for v in by[i]["alice"][d]})) for i in by],
                              [" | ".join(sorted({at(v) for v in by[i]["bob"][d]})) for i in by]))
        from sklearn.metrics import cohen_kappa_score

        t0 = time.perf_counter()
        for a, b in views:
            cohen_kappa_score(a, b)
        base = time.perf_counter() - t0
        n_items = report["items_annotated"]
        store.close()

    print(f"sample: {sum(x['size'] for x in s.strata)} issues (Cochran 95%/5% per repository), 2 annotators")
    print(f"autosave via app: {args.saves} saves in {app_total:.2f} s = {args.saves / app_total:.0f}/s; "
          f"p50 {1000 * statistics.median(lat):.1f} ms, p95 {1000 * pct(lat, .95):.1f} ms")
    print(f"HTTP floor (static file, same server): p50 {1000 * statistics.median(floor):.1f} ms, "
          f"p95 {1000 * pct(floor, .95):.1f} ms; ratio (ours/floor, p50) "
          f"{statistics.median(lat) / statistics.median(floor):.1f}x")
    print(f"baseline bare append: {args.saves / base_total:.0f}/s; p50 {1000 * statistics.median(base_lat):.2f} ms, "
          f"p95 {1000 * pct(base_lat, .95):.2f} ms; ratio (ours/baseline, p50) "
          f"{statistics.median(lat) / statistics.median(base_lat):.1f}x")
    print(f"agreement report on {n_items} issues: {ours:.3f} s (first call in a process {cold:.3f} s); baseline sklearn kappas only "
          f"({len(views)} views): {base:.3f} s; ratio {ours / base:.1f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
