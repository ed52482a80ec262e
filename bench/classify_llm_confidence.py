"""How well the LLM labeler's confidence ranks its own answers, on the liu2025 development set.

Two confidences of the same answers are compared: the one the model states in its JSON
(``confidence``, the fallback) and the one read from the tokens' log-probabilities
(``value_confidences``: per category name, the probability of its tokens over the
alternatives that still spell a category). For each dimension: the model's accuracy, the
area under the ROC curve of each confidence for "the answer is right" (0.5 = no better than
chance), and the accuracy of the most confident half by each. The model is whatever the
OpenAI-compatible endpoint serves; without --llm-url a llama.cpp server (llama-cpp-python)
with the Gemma 3 270M of the test extra is started on 127.0.0.1. That model's labels are near
chance: the question here is whether the confidence knows when they are right.

    python bench/classify_llm_confidence.py [--limit 150] [--llm-url URL --llm-model NAME] [--json out.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson
from sklearn.metrics import roc_auc_score

from bugatlas.classify import LLMError, LLMLabeler, read_issues, read_label_records, taxonomy_spec
from bugatlas.classify.llm import VALUE_CONFIDENCE, build_messages

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.llama_server starts the local server
CORPUS = HERE.parents[1] / "shared" / "data" / "serving-issues-2025.jsonl.gz"
DIMS = ("symptom", "root_cause_group", "phase")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=Path, default=HERE / "devset" / "sample.jsonl")
    ap.add_argument("--gold", type=Path, default=HERE / "devset" / "gold.jsonl")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--limit", type=int, default=150)
    ap.add_argument("--body-chars", type=int, default=1500)
    ap.add_argument("--llm-url")
    ap.add_argument("--llm-model", default="gemma3-270m")
    ap.add_argument("--cache", type=Path, help="keep the answers here (a rerun resumes)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    spec = taxonomy_spec("liu2025")
    corpus = {i.key: i for i in read_issues(args.corpus)}
    wanted = [(r["repo"].lower(), int(r["number"])) for r in map(orjson.loads, args.sample.read_bytes().splitlines())]
    gold = {r.key: r.labels for r in read_label_records(args.gold, taxonomy="liu2025")}
    keys = [k for k in wanted if k in gold][: args.limit]
    server = None
    if args.llm_url is None:
        from tests.llama_server import start_llama_server

        server = start_llama_server(n_ctx=4096)
        args.llm_url = server.base_url
    group_of = {leaf: m["root_cause_group"] for leaf, m in spec.dims["root_cause"].store.items()}
    rows: dict[str, list[tuple[bool, float, float]]] = {d: [] for d in DIMS}
    t0 = time.perf_counter()
    with_logprobs = 0
    failed: list[str] = []
    try:
        # no retries: at temperature 0 an invalid answer comes back the same
        labeler = LLMLabeler("liu2025", args.llm_url, args.llm_model, cache_file=args.cache, max_tokens=300, retries=0,
                             body_chars=args.body_chars, timeout=600)
        for n, key in enumerate(keys, 1):
            try:
                answer = labeler.ask(build_messages(spec, corpus[key], body_chars=args.body_chars))
            except LLMError as exc:  # the small model's invalid JSON, asked again in vain
                failed.append(f"{key[0]}#{key[1]}: {exc}")
                continue
            sure = answer.get(VALUE_CONFIDENCE)
            with_logprobs += sure is not None
            stated = float(answer["confidence"])
            for dim in DIMS:
                src = "root_cause" if dim == "root_cause_group" else dim
                named = answer[src] if isinstance(answer[src], list) else [answer[src]]
                first = named[0]
                value = group_of[first] if dim == "root_cause_group" else first
                truth = gold[key].get(dim) or []
                truth = truth if isinstance(truth, list) else [truth]
                lp = (sure or {}).get(src, {}).get(first, float("nan"))
                rows[dim].append((value in truth, stated, lp))
            if n % 10 == 0:
                print(f"{n}/{len(keys)} issues, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        labeler.close()
    finally:
        if server is not None:
            server.stop()
    seconds = time.perf_counter() - t0
    print(f"{len(keys)} development-set issues, {args.llm_model} at {args.llm_url}, {seconds:.0f} s; "
          f"log-probabilities for {with_logprobs}; no valid answer for {len(failed)}")
    print(f"{'dimension':18} {'acc':>6} {'AUROC stated':>13} {'AUROC logprob':>14} "
          f"{'top-half acc stated':>20} {'top-half acc logprob':>21} {'distinct stated':>16}")
    out = {"issues": len(keys), "model": args.llm_model, "seconds": round(seconds, 1),
           "with_logprobs": with_logprobs, "failed": failed, "dimensions": {}}
    for dim, r in rows.items():
        right = [x[0] for x in r]
        res = {"accuracy": sum(right) / len(right), "distinct_stated": len({x[1] for x in r})}
        for name, col in (("stated", 1), ("logprob", 2)):
            vals = [x[col] for x in r]
            ok = [(y, v) for y, v in zip(right, vals, strict=True) if v == v]
            both = len({y for y, _ in ok}) == 2
            res[f"auroc_{name}"] = roc_auc_score([y for y, _ in ok], [v for _, v in ok]) if both else float("nan")
            # the most confident half (ties broken by the order of the set, as a threshold would not)
            ranked = sorted(ok, key=lambda x: -x[1])[: max(len(ok) // 2, 1)]
            res[f"top_half_accuracy_{name}"] = statistics.mean(y for y, _ in ranked) if ranked else float("nan")
        out["dimensions"][dim] = res
        print(f"{dim:18} {res['accuracy']:6.3f} {res['auroc_stated']:13.3f} {res['auroc_logprob']:14.3f} "
              f"{res['top_half_accuracy_stated']:20.3f} {res['top_half_accuracy_logprob']:21.3f} "
              f"{res['distinct_stated']:16d}")
    if args.json:
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
