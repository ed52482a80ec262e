"""The LLM labeler against a real llama.cpp server on 127.0.0.1 (llama-cpp-python's
OpenAI-compatible server, Gemma 3 270M): schema-valid answers, caching in the store,
bounded retries. The plumbing is tested, not the tiny model's judgment."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from tests.llama_server import llama_server  # noqa: F401 - the session fixture

from bugatlas import Store
from bugatlas.classify import Ensemble, LLMError, LLMLabeler, taxonomy_spec
from bugatlas.classify.llm import VALUE_CONFIDENCE, build_messages, response_schema, validate
from bugatlas.store.records import Issue

from .conftest import LocalServer

TINY = str(Path(__file__).parent / "data" / "tiny.yaml")
MODEL_NAME = "gemma3-270m"  # the alias tests/llama_server.py serves the model under


def _issue(corpus_records, repo: str, number: int) -> Issue:
    r = corpus_records[(repo, number)]
    return Issue(repo=repo, number=number, title=r["title"], body=r["body"])


class Flaky(LocalServer):
    """A local endpoint in front of the real server that misbehaves on cue: each request
    takes the next action of ``script`` ("500", "badjson", "offschema", "slow"), then
    forwards to the real server."""

    def __init__(self, upstream: str, script: list[str]):
        self.upstream, self.script, self.seen = upstream, list(script), []
        super().__init__()

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        action = self.script.pop(0) if self.script else "forward"
        self.seen.append(action)
        if action == "500":
            return 500, b'{"error": "overloaded"}'
        if action == "slow":
            time.sleep(3)
            return 500, b"{}"
        if action in ("badjson", "offschema"):
            content = "{not json" if action == "badjson" else json.dumps({"symptom": "Exploded"})
            return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        resp = httpx.post(self.upstream + path.removeprefix("/v1"), content=body,
                          headers={"Content-Type": "application/json"}, timeout=600)
        return resp.status_code, resp.content


def test_schema_lists_codebook_names_and_validate_rejects_others() -> None:
    spec = taxonomy_spec("liu2025")
    schema = response_schema(spec)
    assert schema["properties"]["symptom"]["items"]["enum"] == spec.dims["symptom"].leaves
    assert schema["properties"]["phase"]["enum"] == spec.dims["phase"].leaves
    ok = {"symptom": ["Crash"], "root_cause": ["Misconfiguration"], "component": ["Operators"],
          "phase": "Engine Setup", "confidence": 0.7, "evidence": "x"}
    assert validate(spec, ok) is ok
    with pytest.raises(ValueError, match="unknown categories"):
        validate(spec, {**ok, "symptom": ["Exploded"]})
    with pytest.raises(ValueError, match="missing 'phase'"):
        validate(spec, {k: v for k, v in ok.items() if k != "phase"})


def test_real_server_answers_in_schema_and_is_cached(llama_server, corpus_records, tmp_path) -> None:  # noqa: F811
    store = Store(tmp_path / "s.db")
    issue = _issue(corpus_records, "ggml-org/llama.cpp", 5023)
    labeler = LLMLabeler(TINY, llama_server.base_url, MODEL_NAME, store=store, max_tokens=80, body_chars=600)
    spec = labeler.spec
    scores = labeler.label(issue)
    assert labeler.stats["requests"] >= 1 and labeler.stats["cache_hits"] == 0
    for dim, dspec in spec.dims.items():
        top = max(scores[dim].probs, key=scores[dim].probs.__getitem__)
        assert top in dspec.leaves
    # asked again: from the cache, no request
    before = labeler.stats["requests"]
    labeler.label(issue)
    assert labeler.stats["requests"] == before and labeler.stats["cache_hits"] == 1
    key = labeler.cache_key(build_messages(spec, issue, body_chars=600))
    row = store.query("SELECT model, response FROM classify_llm_cache WHERE key = ?", (key,))
    assert row and row[0]["model"] == MODEL_NAME and validate(spec, orjson.loads(row[0]["response"]))
    # llama.cpp's server gives log-probabilities: every named category has its confidence from
    # them, kept with the answer (gemma3-270m states confidence 0 for nearly everything)
    answer = orjson.loads(row[0]["response"])
    for dim in spec.dims:
        named = answer[dim] if isinstance(answer[dim], list) else [answer[dim]]
        sure = answer[VALUE_CONFIDENCE][dim]
        assert set(sure) == set(named) and all(0 < c <= 1 for c in sure.values())
        ratios = [scores[dim].probs[leaf] / c for leaf, c in sure.items()]  # the scores follow them
        assert max(ratios) == pytest.approx(min(ratios))
        if len(named) == 1:
            assert scores[dim].probs[named[0]] == pytest.approx(sure[named[0]])
    # a new labeler on the same store answers from the store without the server
    offline = LLMLabeler(TINY, "http://127.0.0.1:9/v1", MODEL_NAME, store=store, retries=0, body_chars=600)
    assert offline.label(issue)["symptom"].probs == scores["symptom"].probs
    store.close()


def test_retries_invalid_json_and_5xx_then_succeeds(llama_server, corpus_records) -> None:  # noqa: F811
    flaky = Flaky(llama_server.base_url, ["500", "badjson", "offschema"])
    try:
        labeler = LLMLabeler(TINY, flaky.url, MODEL_NAME, retries=3, backoff=0.01, max_tokens=80, body_chars=600,
                             logprobs=False)  # llama-cpp-python computes them slowly
        scores = labeler.label(_issue(corpus_records, "sgl-project/sglang", 6857))
        assert set(scores) == {"symptom", "cause"}
        assert labeler.stats["retries"] == 3 and flaky.seen[:3] == ["500", "badjson", "offschema"]
    finally:
        flaky.close()


def test_retries_are_bounded_and_timeouts_count(llama_server, corpus_records) -> None:  # noqa: F811
    flaky = Flaky(llama_server.base_url, ["500"] * 10)
    try:
        labeler = LLMLabeler(TINY, flaky.url, MODEL_NAME, retries=2, backoff=0.01)
        with pytest.raises(LLMError, match="no valid answer after 3 attempts: HTTP 500"):
            labeler.label(_issue(corpus_records, "sgl-project/sglang", 6857))
        assert flaky.seen == ["500"] * 3
    finally:
        flaky.close()
    slow = Flaky(llama_server.base_url, ["slow", "slow"])
    try:
        labeler = LLMLabeler(TINY, slow.url, MODEL_NAME, retries=1, backoff=0.01, timeout=0.5)
        with pytest.raises(LLMError, match="timed out"):
            labeler.label(_issue(corpus_records, "sgl-project/sglang", 6857))
    finally:
        slow.close()


def test_ensemble_asks_llm_when_unsure_and_cli_batch(llama_server, corpus_records, tmp_path) -> None:  # noqa: F811
    issues = [_issue(corpus_records, "ggml-org/llama.cpp", 9013)]
    labeler = LLMLabeler(TINY, llama_server.base_url, MODEL_NAME, max_tokens=80, body_chars=600, logprobs=False)
    ens = Ensemble(TINY, llm=labeler, llm_below=1.01)  # unsure about everything: always ask
    pred = ens.predict(issues, threshold=0.0)[0]
    assert pred.source_kind["symptom"] == "llm" and pred.evidence["symptom"][0].startswith("llm:")
    src = tmp_path / "in.jsonl"
    src.write_bytes(orjson.dumps(corpus_records[("ggml-org/llama.cpp", 9013)]) + b"\n")
    out = tmp_path / "out.jsonl"
    res = subprocess.run([sys.executable, "-m", "bugatlas.cli", "classify", "--taxonomy", TINY, "--input", str(src),
                          "--output", str(out), "--llm-url", llama_server.base_url, "--llm-model", MODEL_NAME,
                          "--llm-below", "1.01", "--llm-max-tokens", "80", "--llm-body-chars", "600",
                          "--no-llm-logprobs"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    rec = orjson.loads(out.read_text())
    assert rec["taxonomy"] == "tiny-failures" and set(rec["labels"]) == {"symptom", "cause_group", "cause"}
