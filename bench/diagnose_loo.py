"""Leave-one-out retrieval of the diagnose index on the shared corpus.

    .venv/bin/python bench/diagnose_loo.py [--db corpus.db] [--json out.json]

For every issue whose body contains an error log: remove the issue from the index (its FTS5
row is deleted inside a savepoint that is rolled back afterwards; the signature and vector
channels exclude it), diagnose its extracted log alone (never its title or prose), and, whenever
another issue in the store carries the same normalized signature, count a hit if one of those
issues is among the top 5. Reported: recall@5 of the hybrid search; in the same run the
baselines BM25 alone (FTS5 over the same query terms) and LSA alone; and the share of logs whose
signature was parsed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import orjson

from bugatlas import Store, import_paths
from bugatlas.diagnose.index import SearchIndex
from bugatlas.diagnose.parse import extract_log, parse_log

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "serving-issues-2025.jsonl.gz"
K = 5


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", type=Path, help="a store holding the corpus (default: a new temporary one)")
    ap.add_argument("--json", type=Path, help="write the numbers here too")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.db or Path(tmp.name) / "corpus.db"
    store = Store(db)
    if store.count_issues(include_references=False) == 0:
        import_paths(store, [CORPUS], progress=False)
    ix = SearchIndex(store)
    t0 = time.perf_counter()
    build = ix.build()
    build_s = time.perf_counter() - t0

    conn = store.conn
    docs = conn.execute(
        "SELECT doc_id, repo, number, has_log, recognized, signature_key FROM diagnose_docs"
    ).fetchall()
    by_sig: dict[str, set[int]] = defaultdict(set)
    for doc_id, _, _, _, _, key in docs:
        if key:
            by_sig[key].add(doc_id)
    with_log = [d for d in docs if d[3]]
    parsed_n = 0
    queries = 0
    hits = {"hybrid": 0, "bm25": 0, "lsa": 0, "signature": 0}
    latencies = []
    misses = []
    for doc_id, repo, number, _, _, _ in with_log:
        body = conn.execute("SELECT body FROM issues WHERE repo = ? AND number = ?", (repo, number)).fetchone()[0]
        log = extract_log(body)
        parsed = parse_log(log)
        parsed_n += parsed.recognized
        twins = by_sig.get(parsed.signature_key or "", set()) - {doc_id}
        if not twins:
            continue
        queries += 1
        conn.execute("SAVEPOINT loo")
        try:
            conn.execute("DELETE FROM diagnose_fts WHERE rowid = ?", (doc_id,))
            t = time.perf_counter()
            top = ix.search(parsed, log, k=K, exclude=[doc_id])
            latencies.append(time.perf_counter() - t)
            got = {h.doc_id for h in top}
            hits["hybrid"] += bool(got & twins)
            if not got & twins:
                misses.append(f"{repo}#{number}: {parsed.signature}")
            hits["bm25"] += bool(set(ix.lexical_channel(parsed, log, K, {doc_id})) & twins)
            hits["lsa"] += bool(set(ix.semantic_channel(parsed, log, K, {doc_id})) & twins)
            hits["signature"] += bool(set(ix.signature_channel(parsed, K, {doc_id})) & twins)
        finally:
            conn.execute("ROLLBACK TO loo")
            conn.execute("RELEASE loo")
    latencies.sort()
    out = {
        "issues": len(docs),
        "issues_with_log": len(with_log),
        "signature_parsed": parsed_n,
        "signature_parsed_share": round(parsed_n / len(with_log), 4),
        "queries_with_a_same_signature_issue": queries,
        "recall_at_5": {k: round(v / queries, 4) for k, v in hits.items()},
        "index_build_s": round(build_s, 1),
        "model": build.model_version,
        "search_ms_median": round(1000 * latencies[len(latencies) // 2], 1),
        "search_ms_p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        "misses": misses[:20],
    }
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    store.close()


if __name__ == "__main__":
    main()
