"""The whole default suite against a REAL llama.cpp server (llama-cpp-python, Gemma 3 270M)."""

from __future__ import annotations

from rich.console import Console
from tests.llama_server import llama_server  # noqa: F401  (session fixture)

from bugatlas.probe import run_probe
from bugatlas.probe.output import render_table

# Checks whose relation must hold on a correct llama.cpp server with a greedy model.
MUST_PASS = {
    "smoke", "determinism", "determinism_chat", "batch_invariance", "stream_consistency",
    "sse_format", "sse_format_chat", "max_tokens", "stop", "usage", "special_tokens",
    "end_of_turn", "logprobs", "logprobs_chat", "load", "robust_empty_prompt", "robust_long_prompt",
}  # fmt: skip
# What llama-cpp-python 0.3.x does differently (findings, not probe defects): n is ignored; a
# default repeat_penalty of 1.1 changes "greedy" choices at temperature 0; detokenize drops a
# leading space; any model name is accepted; negative max_tokens and malformed JSON get HTTP
# 500 instead of a 4xx. They are reported with evidence; the test requires only that each
# failure is classified and explained.


def test_default_suite_against_llama_cpp(llama_server, capsys):  # noqa: F811
    report = run_probe(
        llama_server.base_url, timeout=120,
        overrides={"load": {"concurrency": 4, "max_tokens": 16, "bound_s": 300}},
    )  # fmt: skip
    with capsys.disabled():  # the evidence is the point: show it in the test log
        render_table(report, Console(width=180))
    by_id = {r.id: r for r in report.results}
    assert report.model == llama_server.model_name
    assert not [r for r in report.results if r.status == "error"], [(r.id, r.message) for r in report.results]
    not_passed = {r.id: (r.status, r.message) for r in report.results if r.status != "pass"}
    assert MUST_PASS - set(not_passed) == MUST_PASS, not_passed
    for r in report.results:
        assert r.message, r.id  # every result says why: evidence for passes, reason for skips
        if r.status == "fail":
            assert r.symptom and r.evidence, r.id
    # the engine's own tokenizer is found and used to recount
    assert by_id["usage"].evidence["tokenizer"] == "llama-cpp-python"
    assert "round-trip" in by_id["roundtrip"].message or by_id["roundtrip"].status == "fail"
    load = by_id["load"].metrics
    assert load["completed"] == 4 and load["tokens_per_s"] > 0 and load["ttft_p50_s"] > 0
