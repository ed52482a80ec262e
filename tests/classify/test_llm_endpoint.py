"""The LLM labeler's plumbing against a small real OpenAI-compatible HTTP server on 127.0.0.1
that answers on cue (fast: no model). What the model says is scripted; the HTTP exchange,
the store and the CLI are real."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bugatlas import Store
from bugatlas.classify import SOURCE, Ensemble, LLMError, LLMLabeler, classify_store, taxonomy_spec
from bugatlas.classify.llm import value_confidences
from bugatlas.store.records import Issue

from .conftest import LocalServer

TINY = Path(__file__).parent / "data" / "tiny.yaml"
CONFIDENT = Issue(repo="a/b", number=1, title="segfault undefined symbol",
                  body="Traceback (most recent call last) undefined symbol")


class Endpoint(LocalServer):
    """POST /v1/chat/completions: each request takes the next action of ``script``
    ("ok": ``answer`` as the content, "404", "length": ``answer`` cut off by max_tokens);
    every request's headers and JSON body are kept in ``seen``."""

    def __init__(self, answer: dict | str, script: list[str] | None = None, default: str = "ok",
                 tokens: list[dict] | None = None):
        self.answer, self.script, self.default, self.seen = answer, list(script or []), default, []
        self.tokens = tokens  # logprobs.content sent with each answer, when given
        super().__init__()

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        request = json.loads(body)
        self.seen.append({"path": path, "headers": headers, "body": request})
        action = self.script.pop(0) if self.script else self.default
        if action == "404":
            error = {"error": {"message": f"The model `{request.get('model')}` does not exist."}}
            return 404, json.dumps(error).encode()
        if action == "nologprobs" and request.get("logprobs"):  # as servers without them answer
            return 400, json.dumps({"error": {"message": "logprobs is not supported"}}).encode()
        content = self.answer if isinstance(self.answer, str) else json.dumps(self.answer)
        finish = "stop"
        if action == "length":
            content, finish = content[: len(content) // 2], "length"
        choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}
        if self.tokens is not None and request.get("logprobs"):
            choice["logprobs"] = {"content": self.tokens}
        return 200, json.dumps({"choices": [choice]}).encode()


@pytest.fixture()
def endpoint():
    made: list[Endpoint] = []

    def make(answer: dict | str, script: list[str] | None = None, default: str = "ok",
             tokens: list[dict] | None = None) -> Endpoint:
        made.append(Endpoint(answer, script, default, tokens))
        return made[-1]

    yield make
    for e in made:
        e.close()


TINY_ANSWER = {"symptom": "Hang", "cause": ["Logic"], "confidence": 0.9, "evidence": "undefined symbol"}


def test_llm_asked_only_when_unsure_for_levels_not_named_after_the_dimension(endpoint, tmp_path) -> None:
    # a user's codebook whose levels are not named after the dimension ([area, detail])
    levels = tmp_path / "levels.yaml"
    levels.write_text(TINY.read_text().replace("levels: [cause_group, cause]", "levels: [area, detail]")
                      .replace("name: tiny-failures", "name: tiny-levels"))
    for codebook in (TINY, levels):
        ep = endpoint(TINY_ANSWER)
        ens = Ensemble(str(codebook), llm=LLMLabeler(str(codebook), ep.url, "m", retries=0), llm_below=0.5)
        pred = ens.predict([CONFIDENT])[0]
        assert min(pred.confidence.values()) >= 0.5, pred.confidence  # sure everywhere: no question
        assert ep.seen == [], codebook.name
        assert set(pred.source_kind.values()) <= {"rule", "model"}
    # unsure everywhere: asked once, and the answer is used in the dimension with its own levels
    ep = endpoint(TINY_ANSWER)
    ens = Ensemble(str(levels), llm=LLMLabeler(str(levels), ep.url, "m", retries=0), llm_below=1.01)
    pred = ens.predict([CONFIDENT])[0]
    assert len(ep.seen) == 1
    assert pred.labels["detail"] == ["Logic"] and pred.source_kind["detail"] == "llm"


def _store(tmp_path, corpus_records, keys) -> Store:
    store = Store(tmp_path / "s.db")
    store.upsert_issues(Issue(repo=r["repo"], number=r["number"], title=r["title"], body=r["body"])
                        for r in (corpus_records[k] for k in keys))
    return store


KEYS = [("ggml-org/llama.cpp", 5023), ("sgl-project/sglang", 6857), ("ggml-org/llama.cpp", 9013)]


def test_issues_the_llm_failed_on_are_asked_again_by_the_next_run(endpoint, corpus_records, tmp_path) -> None:
    store = _store(tmp_path, corpus_records, KEYS)
    # the endpoint fails on the first issue only (a 404: not retried)
    ep = endpoint(TINY_ANSWER, script=["404"])
    llm = LLMLabeler(str(TINY), ep.url, "m", store=store, retries=0)
    res = classify_store(store, str(TINY), llm=llm, llm_below=1.01, use_shipped=False)
    assert res.labeled == 3 and res.llm_failed == 1 and len(ep.seen) == 3
    failed = {(lab.repo, lab.issue_number) for lab in store.iter_labels("tiny-failures", source=SOURCE)
              if lab.source_kind != "llm"}
    assert len(failed) == 1  # its offline labels are stored
    # the next run (same classifier version) asks the LLM about that issue, not the other two
    res2 = classify_store(store, str(TINY), llm=llm, llm_below=1.01, use_shipped=False)
    assert res2.labeled == 1 and res2.skipped == 2 and res2.llm_failed == 0 and len(ep.seen) == 4
    kinds = {lab.source_kind for lab in store.iter_labels("tiny-failures", source=SOURCE)}
    assert kinds == {"llm"}
    assert classify_store(store, str(TINY), llm=llm, llm_below=1.01, use_shipped=False).labeled == 0
    store.close()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_cli_says_when_the_llm_failed(endpoint, corpus_records, tmp_path) -> None:
    _store(tmp_path, corpus_records, KEYS).close()
    ep = endpoint(TINY_ANSWER, default="404")  # e.g. a model name the server does not serve
    res = _cli("classify", "--taxonomy", str(TINY), "--db", str(tmp_path / "s.db"), "--no-shipped",
               "--llm-url", ep.url, "--llm-model", "nosuchmodel", "--llm-below", "1.01", "--llm-retries", "0")
    assert res.returncode == 0, res.stderr
    assert len(ep.seen) == 3
    assert "the LLM failed on 3 issues" in res.stderr
    assert "HTTP 404" in res.stderr and "nosuchmodel" in res.stderr


def test_batch_mode_keeps_the_llms_answers_and_a_failed_run_resumes(endpoint, corpus_records, write_jsonl,
                                                                     tmp_path) -> None:
    """Batch mode has no store, and its LLM answers were kept in memory only: a batch the
    endpoint failed on near its end wrote nothing and the next run asked every issue again."""
    issues = write_jsonl([corpus_records[k] for k in KEYS], "issues.jsonl")
    out = tmp_path / "labels.jsonl"
    args = ("classify", "--taxonomy", str(TINY), "--input", str(issues), "--output", str(out), "--no-shipped",
            "--llm-model", "m", "--llm-below", "1.01", "--llm-retries", "0", "-j", "1")
    ep = endpoint(TINY_ANSWER, script=["ok", "ok", "404"])  # fails on the third issue
    res = _cli(*args, "--llm-url", ep.url)
    assert res.returncode != 0 and "HTTP 404" in res.stderr and not out.exists()
    assert "llm: 3 requests, 0 answers from" in res.stderr
    cache = out.with_name("labels.jsonl.llm-cache.sqlite")
    assert cache.is_file()
    ep2 = endpoint(TINY_ANSWER)
    res = _cli(*args, "--llm-url", ep2.url)
    assert res.returncode == 0, res.stderr
    assert len(ep2.seen) == 1 and "llm: 1 requests, 2 answers from" in res.stderr  # only the failed one
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["labels"]["cause"] == ["Logic"] for r in rows)
    # a named cache file; one that is not SQLite is a one-line usage error naming it
    other = tmp_path / "answers.sqlite"
    res = _cli(*args, "--llm-url", ep2.url, "--llm-cache", str(other))
    assert res.returncode == 0 and other.is_file() and len(ep2.seen) == 4
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database " * 100)
    res = _cli(*args, "--llm-url", ep2.url, "--llm-cache", str(bad))
    assert res.returncode == 2 and str(bad) in res.stderr and "--llm-cache" in res.stderr
    res = _cli(*args, "--llm-cache", str(other))  # no --llm-url
    assert res.returncode == 2 and "--llm-cache is for batch mode with --llm-url" in res.stderr


def test_api_key_from_the_environment_is_sent_documented_and_never_shown(endpoint, corpus_records, tmp_path) -> None:
    key = "sk-test-7f3a9c1e55d04b"
    _store(tmp_path, corpus_records, KEYS).close()
    ep = endpoint(TINY_ANSWER, script=["404"])  # one failure: its error is printed
    res = _cli("classify", "--taxonomy", str(TINY), "--db", str(tmp_path / "s.db"), "--no-shipped", "--json",
               "--llm-url", ep.url, "--llm-model", "m", "--llm-below", "1.01", "--llm-retries", "0",
               env={"BUGATLAS_LLM_KEY": key})
    assert res.returncode == 0, res.stderr
    assert [s["headers"].get("Authorization") for s in ep.seen] == [f"Bearer {key}"] * 3
    assert "HTTP 404" in res.stdout + res.stderr
    assert key not in res.stdout + res.stderr
    assert key.encode() not in (tmp_path / "s.db").read_bytes()
    # without the variable no Authorization header is sent
    ep2 = endpoint(TINY_ANSWER)
    env = {k: v for k, v in os.environ.items() if k != "BUGATLAS_LLM_KEY"}
    LLMLabeler(str(TINY), ep2.url, "m", api_key=env.get("BUGATLAS_LLM_KEY"), retries=0).label(CONFIDENT)
    assert "Authorization" not in ep2.seen[0]["headers"]
    # the user can find the variable
    helptext = _cli("classify", "--help").stdout
    assert "BUGATLAS_LLM_KEY" in " ".join(helptext.replace("│", " ").split())


def test_an_answer_cut_off_by_max_tokens_is_not_retried_and_names_the_option(endpoint) -> None:
    ep = endpoint(TINY_ANSWER, default="length")
    labeler = LLMLabeler(str(TINY), ep.url, "m", retries=3, backoff=0.01, max_tokens=40)
    with pytest.raises(LLMError, match=r"cut off at max_tokens 40 \(raise --llm-max-tokens\)"):
        labeler.label(CONFIDENT)
    assert len(ep.seen) == 1 and ep.seen[0]["body"]["max_tokens"] == 40
    # an invalid answer that was not cut off is still retried
    ep2 = endpoint({"symptom": "Exploded"})
    with pytest.raises(LLMError, match="no valid answer after 2 attempts"):
        LLMLabeler(str(TINY), ep2.url, "m", retries=1, backoff=0.01).label(CONFIDENT)
    assert len(ep2.seen) == 2


@pytest.mark.parametrize(("option", "value"), [("--llm-timeout", "-1"), ("--llm-timeout", "0"),
                                               ("--llm-retries", "-1"), ("--llm-max-tokens", "0"),
                                               ("--llm-body-chars", "-10"), ("--llm-format", "json")])
def test_nonsense_llm_options_are_usage_errors(endpoint, tmp_path, option, value) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"repo": "a/b", "number": 1, "title": CONFIDENT.title, "body": CONFIDENT.body}) + "\n")
    ep = endpoint(TINY_ANSWER)
    res = _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
               "--llm-url", ep.url, "--llm-model", "m", "--llm-below", "1.01", option, value)
    assert res.returncode == 2, res.stderr
    assert option in res.stderr and "Traceback" not in res.stderr
    assert ep.seen == [] and not (tmp_path / "o.jsonl").exists()
    assert not (tmp_path / "o.jsonl.llm-cache.sqlite").exists()  # nothing made beside it either


def test_a_batch_stopped_by_bad_input_leaves_no_llm_cache_behind(endpoint, tmp_path) -> None:
    """Bad input met after the LLM was set up (here an empty input file) left an empty
    `<output>.llm-cache.sqlite` and printed "llm: 0 requests, 0 answers from ..." above the
    error line."""
    src = tmp_path / "in.jsonl"
    src.write_text("")
    ep = endpoint(TINY_ANSWER)
    res = _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
               "--llm-url", ep.url, "--llm-model", "m", "--llm-below", "1.01")
    assert res.returncode == 2 and "llm:" not in res.stderr, res.stderr
    assert not (tmp_path / "o.jsonl.llm-cache.sqlite").exists()
    # a cache that holds answers stays, even when the next run fails early
    src.write_text(json.dumps({"repo": "a/b", "number": 1, "title": CONFIDENT.title, "body": CONFIDENT.body}) + "\n")
    assert _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
                "--llm-url", ep.url, "--llm-model", "m", "--llm-below", "1.01").returncode == 0
    src.write_text("")
    assert _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
                "--llm-url", ep.url, "--llm-model", "m", "--llm-below", "1.01").returncode == 2
    assert (tmp_path / "o.jsonl.llm-cache.sqlite").is_file()


def test_llm_evidence_is_a_quote_of_the_issue_or_the_model_name(endpoint) -> None:
    """The evidence of an LLM label is the model's quote when it is words of the issue. Small
    models answer quotes such as ":" or "][" (seen from gemma3-270m) or paraphrase; those were
    stored as evidence ("llm: :"). They are replaced by the model's name."""
    for quote, expected in (("Undefined   symbol", "llm: Undefined symbol"),  # whitespace and case aside
                            (":", "llm: m"), ("][", "llm: m"), ("a missing CUDA library", "llm: m")):
        ep = endpoint({**TINY_ANSWER, "evidence": quote})
        labels = LLMLabeler(str(TINY), ep.url, "m", retries=0).label(CONFIDENT)
        assert labels["symptom"].evidence["Hang"] == [expected], quote


def test_batch_llm_cache_that_is_the_output_or_an_input_or_in_a_missing_folder_is_one_line(
        endpoint, corpus_records, write_jsonl, tmp_path) -> None:
    """--llm-cache naming the --output file: the answers were committed to it, then the output
    was renamed over them (every answer lost), and the next run stopped on "file is not a
    database". An --output in a missing folder was blamed on the cache ("choose another with
    --llm-cache") the user never gave."""
    issues = write_jsonl([corpus_records[k] for k in KEYS], "issues.jsonl")
    out = tmp_path / "labels.jsonl"
    ep = endpoint(TINY_ANSWER)
    args = ("classify", "--taxonomy", str(TINY), "--input", str(issues), "--no-shipped", "--llm-url", ep.url,
            "--llm-model", "m", "--llm-below", "1.01", "--llm-retries", "0", "-j", "1")
    res = _cli(*args, "--output", str(out), "--llm-cache", str(out))
    assert res.returncode == 2, res.stderr
    assert f"--llm-cache {out} is the --output file" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and ep.seen == []
    before = issues.read_bytes()
    res = _cli(*args, "--output", str(out), "--llm-cache", str(issues))
    assert res.returncode == 2 and "is an input file" in res.stderr and issues.read_bytes() == before
    missing = tmp_path / "nowhere" / "labels.jsonl"
    res = _cli(*args, "--output", str(missing))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"error: --output {missing}: folder {missing.parent} does not exist"
    assert not missing.parent.exists() and ep.seen == []


def test_an_llm_answer_cache_another_process_holds_locked_is_a_one_line_error(endpoint, tmp_path) -> None:
    """Two batches sharing one --llm-cache, or the file open in a sqlite3 shell mid-transaction:
    committing an answer to it raised sqlite3.OperationalError ("database is locked") as a
    traceback. It is now a usage error naming the file and the option."""
    import sqlite3

    from bugatlas.errors import BadInputError

    cache = tmp_path / "answers.sqlite"
    ep = endpoint(TINY_ANSWER)
    first = LLMLabeler(str(TINY), ep.url, "m", retries=0, cache_file=cache)
    first.label(CONFIDENT)
    first.close()
    other = sqlite3.connect(cache, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file
    try:
        labeler = LLMLabeler(str(TINY), ep.url, "m", retries=0, cache_file=cache)
        assert labeler.label(CONFIDENT)  # a stored answer is still read
        fresh = Issue(repo="a/b", number=2, title="server hangs", body="no output after the first request")
        with pytest.raises(BadInputError, match=rf"LLM answer cache {cache}: cannot write it \(database is "
                                                r"locked\).*--llm-cache"):
            labeler.label(fresh)
        labeler.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(ep.seen) == 2


@pytest.mark.parametrize(("url", "message"), [("http://[::1", "not a URL"),
                                              ("localhost:8080/v1", "not an http:// or https:// URL"),
                                              ("ftp://x/v1", "not an http:// or https:// URL"),
                                              ("http:///v1", "not an http:// or https:// URL")])
def test_a_malformed_llm_url_is_a_usage_error_before_any_work(tmp_path, url, message) -> None:
    """"http://[::1" stopped with an httpx.InvalidURL traceback after the text model was
    fitted; "localhost:8080/v1" (no scheme) and "ftp://" were retried with backoff on every
    issue (in store mode: every failure report, 3.5 s each) as "connection failed"."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"repo": "a/b", "number": 1, "title": CONFIDENT.title, "body": CONFIDENT.body}) + "\n")
    out = tmp_path / "o.jsonl"
    res = _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(out), "--no-shipped",
               "--llm-url", url, "--llm-model", "m", "--llm-below", "1.01")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().startswith(f"error: --llm-url {url}: {message}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.sqlite"))


def test_llm_model_without_llm_url_is_a_usage_error_not_an_offline_run(tmp_path) -> None:
    """`--llm-model qwen` without `--llm-url` ran offline without a word: the labels said
    `rule`/`model` while the user believed the LLM had been asked."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"repo": "a/b", "number": 1, "title": CONFIDENT.title, "body": CONFIDENT.body}) + "\n")
    res = _cli("classify", "--taxonomy", str(TINY), "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
               "--no-shipped", "--llm-model", "qwen2.5-7b", "--llm-below", "1.01")
    assert res.returncode == 2, res.stderr
    assert "error: --llm-model qwen2.5-7b needs --llm-url" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o.jsonl").exists()


def _token(text: str, alternatives: dict[str, float]) -> dict:
    """One token of logprobs.content: ``text`` and its alternatives' probabilities (the
    token's own among them)."""
    return {"token": text, "logprob": math.log(alternatives[text]),
            "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alternatives.items()]}


LOGPROB_ANSWER = '{"symptom": "Hang", "cause": ["Logic"], "confidence": 0.9, "evidence": "undefined symbol"}'
LOGPROB_TOKENS = [
    _token('{"symptom": "', {'{"symptom": "': 1.0}),
    # the server's probabilities come before the grammar: "hang" is not a category name
    _token("Hang", {"Hang": 0.6, "Crash": 0.3, "hang": 0.1}),
    _token('", "cause": ["', {'", "cause": ["': 1.0}),
    _token("Lo", {"Lo": 0.5, "Ver": 0.25, "Back": 0.25, "xyz": 0.2}),  # Logic, Version, Backend
    _token("gic", {"gic": 0.8, "ng": 0.2}),                              # "Long" names none
    _token('"], "confidence": 0.9, "evidence": "undefined symbol"}',
           {'"], "confidence": 0.9, "evidence": "undefined symbol"}': 0.7, "s": 0.3}),
]


def test_confidence_comes_from_the_tokens_log_probabilities(endpoint) -> None:
    """The model's stated confidence was the only one, floored at 0.5: small models state 0
    for everything, and a strong one's stated number is poorly calibrated. Where the server
    sends log-probabilities, a category's confidence is the probability of its name's tokens
    among the alternatives that still spell a category (the grammar's view)."""
    assert "".join(t["token"] for t in LOGPROB_TOKENS) == LOGPROB_ANSWER
    spec = taxonomy_spec(str(TINY))
    sure = value_confidences(spec, LOGPROB_ANSWER, LOGPROB_TOKENS)
    assert sure["symptom"] == {"Hang": pytest.approx(0.6 / 0.9)}
    assert sure["cause"] == {"Logic": pytest.approx(0.5 * 1.0 * 1.0)}
    ep = endpoint(LOGPROB_ANSWER, tokens=LOGPROB_TOKENS)
    labeler = LLMLabeler(str(TINY), ep.url, "m", retries=0)
    scores = labeler.label(CONFIDENT)
    assert ep.seen[0]["body"]["logprobs"] is True and ep.seen[0]["body"]["top_logprobs"] == 20
    assert scores["symptom"].probs["Hang"] == pytest.approx(0.6 / 0.9)
    assert scores["symptom"].strength == pytest.approx(0.6 / 0.9)
    pred = Ensemble(str(TINY), llm=labeler, llm_below=1.01).predict([CONFIDENT], threshold=0.55)[0]
    assert pred.labels["symptom"] == ["Hang"] and pred.confidence["symptom"] == pytest.approx(0.6667, abs=1e-4)
    assert pred.labels["cause"] == []  # 0.5 is below the threshold: abstained, as an offline label would
    # tokens that do not spell the answer (or none): the stated confidence, 0.5 + 0.5 * 0.9
    for tokens in (LOGPROB_TOKENS[:-1], [{"token": 1}], None):
        assert value_confidences(spec, LOGPROB_ANSWER, tokens) is None
    # a named category the model was very unsure of still comes first (an even share of the
    # rest, 0.495 here, would have put another cause above Logic's 0.01)
    unsure = [*LOGPROB_TOKENS[:3], _token("Lo", {"Lo": 0.01, "Ver": 0.5, "Back": 0.49}), *LOGPROB_TOKENS[4:]]
    cause = LLMLabeler(str(TINY), endpoint(LOGPROB_ANSWER, tokens=unsure).url, "m", retries=0).label(CONFIDENT)["cause"]
    assert max(cause.probs, key=cause.probs.__getitem__) == "Logic"
    ep2 = endpoint(LOGPROB_ANSWER, tokens=LOGPROB_TOKENS[1:])
    assert LLMLabeler(str(TINY), ep2.url, "m", retries=0).label(CONFIDENT)["symptom"].probs["Hang"] == pytest.approx(0.95)


def test_a_server_without_log_probabilities_is_asked_again_without_them(endpoint) -> None:
    ep = endpoint(LOGPROB_ANSWER, default="nologprobs", tokens=LOGPROB_TOKENS)
    labeler = LLMLabeler(str(TINY), ep.url, "m", retries=0)
    assert labeler.label(CONFIDENT)["symptom"].probs["Hang"] == pytest.approx(0.95)  # the stated one
    assert [bool(s["body"].get("logprobs")) for s in ep.seen] == [True, False]
    labeler.label(Issue(repo="a/b", number=2, title="it hangs", body="stuck forever"))
    assert len(ep.seen) == 3 and "logprobs" not in ep.seen[2]["body"]  # not asked for again


def test_raw_newlines_in_the_evidence_quote_are_read_not_retried(endpoint) -> None:
    """llama.cpp's JSON grammar lets a model put a raw newline or tab in a string: gemma3-270m
    did so in the evidence quote of 10 of 60 development-set answers, each rejected ("unexpected
    control character in string") and asked again to the same answer."""
    content = json.dumps(TINY_ANSWER).replace("undefined symbol", "undefined\n\tsymbol")
    assert "\n\t" in content  # raw characters, not escapes
    ep = endpoint(content)
    scores = LLMLabeler(str(TINY), ep.url, "m", retries=2, backoff=0.01).label(CONFIDENT)
    assert len(ep.seen) == 1 and scores["symptom"].probs["Hang"] > 0.5
    assert scores["symptom"].evidence["Hang"] == ["llm: undefined symbol"]  # a quote of the issue, spaces aside
    ep2 = endpoint("{not json")
    with pytest.raises(LLMError, match="invalid answer"):
        LLMLabeler(str(TINY), ep2.url, "m", retries=0).label(CONFIDENT)
