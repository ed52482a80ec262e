"""Each injected fault of the faulty server is caught by its oracle, and by no other."""

from __future__ import annotations

import pytest
from tests.probe.faulty_server import FAULTS, FaultyServer

from bugatlas.probe import load_suite, run_probe

# fault -> (oracle that must fail, the liu2025 symptom its failure must carry)
EXPECTED = {
    "nondeterministic": ("determinism", "Unexpected Output"),
    "batch_variance": ("batch_invariance", "Unexpected Output"),
    "stream_mismatch": ("stream_consistency", "Unexpected Output"),
    "broken_sse": ("sse_format", "Feature Failure"),
    "ignore_max_tokens": ("max_tokens", "Unexpected Output"),
    "ignore_stop": ("stop", "Feature Failure"),
    "ignore_n": ("n_choices", "Feature Failure"),
    "bad_usage": ("usage", "Silent Error"),
    "leak_special": ("special_tokens", "Unexpected Output"),
    "runaway_turn": ("end_of_turn", "Unexpected Output"),
    "lossy_roundtrip": ("roundtrip", "Unexpected Output"),
    "bad_logprobs": ("logprobs", "Silent Error"),
    "greedy_not_argmax": ("logprobs", "Unexpected Output"),
    "error_on_empty_prompt": ("bad_request", "Crash"),
    "hang_on_long_prompt": ("bad_request", "System Hang"),
    "accept_negative_max_tokens": ("bad_request", "Silent Error"),
    "accept_unknown_model": ("bad_request", "Silent Error"),
    "crash_on_malformed_json": ("bad_request", "Crash"),
    "slow_under_load": ("load", "Abnormal Performance"),
}
# the robustness faults are told apart by the check (same oracle, different case)
EXPECTED_CHECK = {
    "error_on_empty_prompt": "robust_empty_prompt",
    "hang_on_long_prompt": "robust_long_prompt",
    "accept_negative_max_tokens": "robust_negative_max_tokens",
    "accept_unknown_model": "robust_unknown_model",
    "crash_on_malformed_json": "robust_malformed_json",
    "greedy_not_argmax": "greedy_argmax",
}
# faults several checks of one oracle catch, each with its own check's symptom
SYMPTOMS = {"bad_logprobs": {"Silent Error", "Unexpected Output"}}
OVERRIDES = {"load": {"bound_s": 1.5}}


def test_every_fault_has_an_expectation():
    assert set(EXPECTED) == set(FAULTS)


def test_healthy_server_passes_every_check():
    with FaultyServer() as srv:
        report = run_probe(srv.base_url, timeout=5, overrides=OVERRIDES)
    bad = [(r.id, r.status, r.message) for r in report.results if r.status != "pass"]
    assert bad == []
    assert report.ok and report.counts()["pass"] == len(load_suite("default").checks)
    load = next(r for r in report.results if r.id == "load")
    assert load.metrics["completed"] == 8 and load.metrics["ttft_p95_s"] is not None


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught_by_its_oracle_only(fault: str):
    oracle, symptom = EXPECTED[fault]
    with FaultyServer([fault]) as srv:
        report = run_probe(srv.base_url, timeout=3, overrides=OVERRIDES)
    failed = [r for r in report.results if r.status in ("fail", "error")]
    assert failed, f"{fault}: nothing failed"
    assert {r.oracle for r in failed} == {oracle}, [(r.id, r.message) for r in failed]
    allowed = SYMPTOMS.get(fault, {symptom})
    assert {r.symptom for r in failed} <= allowed, [(r.id, r.symptom, r.kind) for r in failed]
    if fault in EXPECTED_CHECK:
        assert [r.id for r in failed] == [EXPECTED_CHECK[fault]]
    assert all(r.message for r in failed)
    assert not report.ok


def test_nondeterminism_skips_the_checks_that_need_a_deterministic_baseline():
    with FaultyServer(["nondeterministic"]) as srv:
        report = run_probe(srv.base_url, timeout=3, only=["determinism", "batch_invariance", "stop"])
    status = {r.id: (r.status, r.message) for r in report.results}
    assert status["determinism"][0] == "fail"
    assert status["batch_invariance"][0] == "skip" and "deterministic" in status["batch_invariance"][1]
    assert status["stop"][0] == "skip"


def test_crashed_server_skips_the_remaining_checks(tmp_path):
    suite = tmp_path / "crash-first.yaml"
    suite.write_text(
        "name: crash-first\n"
        "classification: {not_alive: Crash, timeout: System Hang}\n"
        "checks:\n"
        "  - {id: malformed, oracle: bad_request, params: {case: malformed_json}, symptom: Crash}\n"
        "  - {id: again, oracle: determinism, symptom: Unexpected Output, unexpected_output: Inconsistent Output}\n",
        encoding="utf-8",
    )
    with FaultyServer(["crash_on_malformed_json"]) as srv:
        report = run_probe(srv.base_url, suite=str(suite), timeout=3)
    first, second = report.results
    assert (first.status, first.kind, first.symptom) == ("fail", "not_alive", "Crash")
    assert "stopped answering" in first.message
    # a dead server: the checks after it are skipped with the reason, not reported as failures
    assert second.status == "skip" and "after check malformed" in second.message


def test_faults_can_be_switched_over_http():
    import httpx

    with FaultyServer() as srv:
        r = httpx.post(srv.base_url.removesuffix("/v1") + "/control", json={"faults": ["ignore_n"]}, timeout=5)
        assert r.json() == {"faults": ["ignore_n"]}
        report = run_probe(srv.base_url, timeout=3, only=["n"])
    assert report.results[0].status == "fail"


def test_missing_capabilities_are_skipped_with_the_reason():
    """A server without tokenizer endpoints that refuses logprobs and n > 1 (with a 400):
    those checks are skipped with the reason, usage is checked approximately, nothing fails."""
    with FaultyServer(flavor="minimal") as srv:
        report = run_probe(srv.base_url, timeout=5, overrides=OVERRIDES)
    by_id = {r.id: r for r in report.results}
    skipped = {r.id for r in report.results if r.status == "skip"}
    assert skipped == {"n", "roundtrip", "logprobs", "logprobs_chat", "greedy_argmax"}
    assert "no tokenize/detokenize" in by_id["roundtrip"].message
    assert "does not offer" in by_id["logprobs"].message and "HTTP 400" in by_id["logprobs"].message
    assert "approximate" in by_id["usage"].message
    assert report.ok and report.counts()["fail"] == 0


def test_vllm_style_tokenizer_and_version_are_discovered():
    with FaultyServer(flavor="vllm") as srv:
        report = run_probe(srv.base_url, timeout=5, only=["usage", "roundtrip"])
    assert report.ok, [(r.id, r.message) for r in report.results]
    assert report.server["engine"] == "vllm" and report.server["context_length"] == 256
    assert report.results[0].evidence["tokenizer"] == "vllm"


def test_usage_on_the_chat_endpoint_allows_the_chat_template():
    # The server counts the prompt after its chat template; the messages alone are fewer tokens.
    with FaultyServer() as srv:
        r = run_probe(srv.base_url, only=["usage"], overrides={"usage": {"endpoint": "chat", "tolerance": 0}}, timeout=10).results[0]
        assert r.status == "pass", r.message
        assert r.evidence["usage"]["prompt_tokens"] > r.evidence["retokenized_prompt"]
        plain = run_probe(srv.base_url, only=["usage"], overrides={"usage": {"tolerance": 0}}, timeout=10).results[0]
        assert plain.status == "pass", plain.message
    with FaultyServer(["bad_usage"]) as srv:
        assert run_probe(srv.base_url, only=["usage"], timeout=10).results[0].status == "fail"
