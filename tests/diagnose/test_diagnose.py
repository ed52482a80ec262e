"""Diagnosis end to end: library and CLI, on hand-written logs and the real corpus store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bugatlas.cli import app
from bugatlas.diagnose import diagnose
from bugatlas.diagnose.batch import predict_batch, predict_record
from bugatlas.store.records import Comment, Fix, PullRequest

LOGS = Path(__file__).parent / "logs"
runner = CliRunner()


def bugatlas(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess: exit codes and error lines as a user sees them."""
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True,
                          text=True, input=stdin, timeout=300)


def test_undefined_symbol_points_at_incompatible_version_with_next_steps():
    d = diagnose((LOGS / "undefined_symbol.log").read_text())
    rc = d.predictions["root_cause"]
    assert rc.category == "Incompatible Version" and rc.path == ["Environment", "Incompatible Version"]
    assert 0 < rc.confidence <= 0.95
    assert any("undefined symbol" in e.text for e in rc.evidence)
    assert any("rebuild it against the installed PyTorch" in s for s in d.next_steps)
    assert d.predictions["symptom"].category == "Crash"
    assert d.known_pattern and "Incompatible Version" in d.verdict


def test_nothing_recognizable_is_said_honestly(indexed_store):
    d = diagnose((LOGS / "nothing.log").read_text(), indexed_store)
    assert not d.known_pattern
    assert d.verdict.startswith("no known pattern")
    assert all(p.category is None for p in d.predictions.values())
    assert d.next_steps == []
    assert len(d.similar) == 5  # still the nearest issues, by text


def test_similar_issues_carry_resolution(indexed_store):
    # Give one same-signature issue a fixing PR and a maintainer's closing comment.
    indexed_store.upsert_pull_requests([PullRequest(repo="ggml-org/llama.cpp", number=4500,
                                                    title="cuda: fix invalid resource handle with multiple GPUs",
                                                    state="closed", merged_at="2023-12-20T10:00:00Z",
                                                    html_url="https://github.com/ggml-org/llama.cpp/pull/4500")])
    indexed_store.add_fixes([Fix(repo="ggml-org/llama.cpp", issue_number=4442, pr_repo="ggml-org/llama.cpp", pr_number=4500)])
    indexed_store.upsert_comments([Comment(repo="ggml-org/llama.cpp", issue_number=4442, comment_id=1,
                                           author="maint", author_association="MEMBER",
                                           body="Fixed in b1700, please update.", created_at="2023-12-21T00:00:00Z")])
    log = "CUDA error 400 at ggml-cuda.cu:6120: invalid resource handle\ncurrent device: 1"
    d = diagnose(log, indexed_store, k=5)
    by_number = {s.number: s for s in d.similar}
    assert 4442 in by_number
    res = by_number[4442].resolution
    assert res["fixing_prs"][0]["number"] == 4500 and res["fixed_version"] == "b1700"
    assert res["closing_comment"]["association"] == "MEMBER"
    assert by_number[4442].same_signature and by_number[4442].url.endswith("/4442")


def test_cli_diagnose_json_and_text(indexed_store):
    db = str(indexed_store.path)
    result = runner.invoke(app, ["diagnose", str(LOGS / "torch_oom.log"), "--db", db, "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["parsed"]["family"] == "torch_oom" and data["known_pattern"]
    assert len(data["similar"]) == 3 and data["similar"][0]["same_signature"]
    assert data["predictions"]["symptom"]["category"] == "Crash"
    text = runner.invoke(app, ["diagnose", "-", "--db", db], input=(LOGS / "nothing.log").read_text())
    assert text.exit_code == 0 and "no known pattern" in text.stdout


def test_cli_diagnose_without_store_still_parses(tmp_path):
    result = runner.invoke(app, ["diagnose", str(LOGS / "ggml_assert_new.log"), "--db", str(tmp_path / "none.db"), "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["parsed"]["signature"].startswith("GGML_ASSERT(") and data["similar"] == []
    assert any("no study store" in n for n in data["notes"])
    assert not (tmp_path / "none.db").exists()


def test_cli_command_captures_failure_output(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("import sys\nprint('starting')\nraise ModuleNotFoundError(\"No module named 'vllm._C'\")\n")
    result = runner.invoke(app, ["diagnose", "--command", f"{sys.executable} {script}",
                                 "--db", str(tmp_path / "x.db"), "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["command"]["returncode"] == 1
    assert data["parsed"]["signature"] == "ModuleNotFoundError: No module named 'vllm._C'"


def test_cli_errors_name_the_fault(tmp_path):
    result = bugatlas("diagnose", str(tmp_path / "missing.log"), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "missing.log: cannot read" in result.stderr
    result = bugatlas("diagnose", "--command", "no-such-binary-xyz --help", "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "no-such-binary-xyz: command not found" in result.stderr
    result = bugatlas("diagnose", "--batch", "--input", str(tmp_path / "in.jsonl"))
    assert result.returncode == 2 and "--output" in result.stderr
    (tmp_path / "x.log").write_text("KeyError: 'x'")
    result = bugatlas("diagnose", str(tmp_path / "x.log"), "--taxonomy", "nosuchbook", "--db", str(tmp_path / "x.db"))
    assert result.returncode != 0 and "nosuchbook" in result.stderr


def test_batch_format(tmp_path):
    records = [
        {"repo": "vllm-project/vllm", "number": 1, "title": "x",
         "body": "```\n" + (LOGS / "undefined_symbol.log").read_text() + "```"},
        {"repo": "vllm-project/vllm", "number": 2, "title": "slow", "body": "It is slower than last week."},
    ]
    out = list(predict_batch(records, "liu2025"))
    assert out[0]["labels"]["root_cause"] == ["Incompatible Version"]
    assert out[0]["labels"]["root_cause_group"] == ["Environment"]
    assert out[0]["labels"]["symptom"] == ["Crash"]
    assert set(out[0]["confidence"]) == {k for k, v in out[0]["labels"].items() if v}
    assert not any(out[1]["labels"].values()) and out[1]["has_log"] is False
    assert out[1]["labels"]["root_cause"] == [] and out[1]["confidence"] == {}
    src = tmp_path / "issues.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    dst = tmp_path / "labels.jsonl"
    result = runner.invoke(app, ["diagnose", "--batch", "--input", str(src), "--output", str(dst)])
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(l) for l in dst.read_bytes().splitlines()]
    assert [r["number"] for r in rows] == [1, 2] and rows[0]["taxonomy"] == "liu2025"
    # classify's reader (the eval stage's input) takes these lines as they are
    from bugatlas.classify.batch import read_label_records

    recs = read_label_records(dst, taxonomy="liu2025")
    assert recs[0].labels["root_cause"] == ["Incompatible Version"] and recs[1].labels["symptom"] == []


def test_batch_rejects_bad_lines(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"repo": "a/b", "number": 1}\n{not json\n')
    result = bugatlas("diagnose", "--batch", "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "bad.jsonl: line 2" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_index_cli(indexed_store):
    db = str(indexed_store.path)
    result = runner.invoke(app, ["index", "status", "--db", db, "--json"])
    assert result.exit_code == 0 and orjson.loads(result.stdout)["up_to_date"]
    result = runner.invoke(app, ["index", "build", "--db", db, "--json"])
    assert result.exit_code == 0 and orjson.loads(result.stdout)["indexed"] == 0


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log")))
def test_every_sample_log_diagnoses(name):
    d = diagnose((LOGS / name).read_text())
    assert d.to_dict()["parsed"]["recognized"] == (name not in {"nothing.log", "versions.log"})


def test_yu2026_taxonomy():
    d = diagnose((LOGS / "torch_oom.log").read_text(), taxonomy="yu2026")
    assert d.taxonomy == "yu2026"
    assert d.predictions["symptom"].category == "GPU OOM"
    assert d.predictions["root_cause"].category == "GPU Memory Insufficiency"
    assert d.predictions["root_cause"].path[-1] == "GPU Memory Insufficiency" and len(d.predictions["root_cause"].path) == 3
    assert d.next_steps
    nccl = diagnose((LOGS / "nccl.log").read_text(), taxonomy="yu2026")
    assert nccl.predictions["root_cause"].category == "Multi-GPU Communication Failure"


def test_batch_looks_up_bodies_in_the_store(indexed_store, tmp_path):
    src = tmp_path / "keys.jsonl"
    src.write_text('{"repo": "ggml-org/llama.cpp", "number": 2503}\n{"repo": "ggml-org/llama.cpp", "number": 4442}\n')
    dst = tmp_path / "labels.jsonl"
    result = bugatlas("diagnose", "--batch", "--input", str(src), "--output", str(dst), "--db", str(indexed_store.path))
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(l) for l in dst.read_bytes().splitlines()]
    assert all(r["has_log"] and r["labels"]["symptom"] == ["Crash"] for r in rows)
    assert rows[0]["signature"] == rows[1]["signature"]
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"repo": "ggml-org/llama.cpp", "number": 77777777}\n')
    result = bugatlas("diagnose", "--batch", "--input", str(missing), "--output", str(dst), "--db", str(indexed_store.path))
    assert result.returncode == 2 and "record 1 (ggml-org/llama.cpp#77777777): no body in the store" in result.stderr


def test_batch_bad_records_and_output_dir_are_one_line_errors(tmp_path):
    src = tmp_path / "in.jsonl"
    # the error names the option, the file and the line (it used to say only "record N")
    src.write_text('\n{"repo": "a/b", "number": 1, "body": 5}\n')
    result = bugatlas("diagnose", "--batch", "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and f"--input: {src}: line 2: body is int, expected text" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o.jsonl").exists()
    src.write_text('{"repo": "a/b", "number": "x", "body": "KeyError: 1"}\n')
    result = bugatlas("diagnose", "--batch", "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and f"--input: {src}: line 1: number 'x' is not an issue number" in result.stderr
    src.write_text('{"repo": "a/b", "number": 1, "body": "KeyError: 1"}\n')
    result = bugatlas("diagnose", "--batch", "--input", str(src), "--output", str(tmp_path / "no" / "o.jsonl"))
    assert result.returncode == 2 and "directory" in result.stderr and "Traceback" not in result.stderr


def test_batch_only_options_are_not_silently_ignored(tmp_path):
    (tmp_path / "x.log").write_text("KeyError: 'x'")
    out = tmp_path / "out.jsonl"
    result = bugatlas("diagnose", str(tmp_path / "x.log"), "--output", str(out), "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "--batch" in result.stderr
    src = tmp_path / "in.jsonl"
    src.write_text('{"repo": "a/b", "number": 1, "body": "KeyError: 1"}\n')
    result = bugatlas("diagnose", str(tmp_path / "x.log"), "--batch", "--input", str(src), "--output", str(out),
                      "--db", str(tmp_path / "x.db"))
    assert result.returncode == 2 and "--batch" in result.stderr and not out.exists()


def test_signals_do_not_match_inside_words():
    # liu2025's Concurrency Issue signal has `race`: "Traceback" and "stacktrace" are not races.
    log = ("Traceback (most recent call last):\n"
           '  File "/opt/venv/lib/python3.10/site-packages/vllm/engine/arg_utils.py", line 900, in create_engine_config\n'
           "    model_config = self.create_model_config()\n"
           "KeyError: 'qwen3'\n"
           "CUDA kernel errors might be asynchronously reported, so the stacktrace below might be incorrect.\n")
    d = diagnose(log)
    assert d.predictions["symptom"].category == "Crash"
    assert d.predictions["root_cause"].category is None, d.predictions["root_cause"].evidence
    # a real race condition still counts, and so does a CamelCase part (OutOfMemoryError)
    d = diagnose(log + "It looks like a race between the scheduler and the detokenizer.\n")
    assert d.predictions["root_cause"].category == "Concurrency Issue"
    d = diagnose("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n", taxonomy="yu2026")
    assert d.predictions["symptom"].category == "GPU OOM"


def test_command_that_hangs_after_printing_is_diagnosed_from_its_output(tmp_path):
    # stdout only, then a hang: TimeoutExpired holds bytes for stdout and None for stderr
    script = "import time; print('RuntimeError: CUDA error: out of memory', flush=True); time.sleep(60)"
    cmd = f'{sys.executable} -u -c "{script}"'
    result = bugatlas("diagnose", "--command", cmd, "--timeout", "3", "--json", "--db", str(tmp_path / "x.db"))
    assert result.returncode == 0, result.stderr
    data = orjson.loads(result.stdout)
    assert data["command"]["timed_out"] is True
    assert "out of memory" in data["parsed"]["message"]
    assert any("--timeout" in n for n in data["notes"])


def test_stdin_with_invalid_utf8_is_decoded_like_a_file(tmp_path):
    # `kubectl logs … | bugatlas diagnose - --json`: bytes that are not UTF-8 (a latin-1 path,
    # binary junk) became surrogates that orjson refused: a TypeError traceback, no answer
    log = (LOGS / "torch_oom.log").read_bytes().rstrip() + b" Process \xff\xfe caf\xe9 has 1 GiB.\n"
    r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "diagnose", "-", "--json", "--db", str(tmp_path / "none.db")],
                       input=log, capture_output=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-600:]
    out = orjson.loads(r.stdout)
    assert out["known_pattern"] and "OutOfMemoryError" in out["parsed"]["signature"]
    assert "\ufffd\ufffd caf\ufffd" in out["parsed"]["message"]
    path = tmp_path / "same.log"
    path.write_bytes(log)
    from_file = orjson.loads(bugatlas("diagnose", str(path), "--json", "--db", str(tmp_path / "none.db")).stdout)
    assert from_file["parsed"] == out["parsed"]


def test_command_that_cannot_be_executed_is_one_line(tmp_path):
    script = tmp_path / "serve.sh"
    script.write_text("#!/bin/sh\necho hi\n", encoding="utf-8")  # not executable (no chmod +x)
    for cmd in (str(script), str(tmp_path)):
        result = bugatlas("diagnose", "--command", cmd, "--db", str(tmp_path / "x.db"))
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-400:]
        assert f"--command: {cmd}: cannot run it (Permission denied)" in result.stderr


def test_a_log_longer_than_the_parsed_part_keeps_its_line_numbers():
    # beyond MAX_LOG_CHARS only the head and the tail are read; the parse numbered lines of that
    # clipped text (line 1,757 of a 50 MB log for its line 438,603) while the predictions
    # numbered and scanned the whole log, so the two disagreed and both were slow
    filler = "INFO 05-02 11:00:09 [engine.py:123] Avg generation throughput: 12.3 tokens/s\n"
    log = filler * 20_000 + (LOGS / "torch_oom.log").read_text() + filler * 50
    lines = log.split("\n")
    want = next(i for i, ln in enumerate(lines) if ln.startswith("torch.OutOfMemoryError")) + 1
    d = diagnose(log).to_dict()
    assert d["parsed"]["line_no"] == want > 20_000
    assert d["parsed"]["chain"][-1]["line_no"] == want
    evidence = [e for p in d["predictions"].values() for e in p["evidence"]]
    assert evidence and any(e["line_no"] == want for e in evidence)
    for e in evidence:
        assert lines[e["line_no"] - 1].strip()[:300] == e["text"], e


def test_batch_evidence_of_a_long_log_names_its_own_lines():
    filler = "INFO 05-02 11:00:09 [engine.py:123] Avg generation throughput: 12.3 tokens/s\n"
    body = "```\n" + filler * 20_000 + (LOGS / "torch_oom.log").read_text() + "```\n"  # one pasted log
    from bugatlas.diagnose.parse import extract_log
    from bugatlas.diagnose.predict import get_codebook

    lines = extract_log(body).split("\n")  # batch evidence numbers the lines of the extracted log
    assert len(lines) > 20_000
    row = predict_record({"repo": "a/b", "number": 1, "body": body}, get_codebook("liu2025"))
    shown = [e for ev in row["evidence"].values() for e in ev]
    assert shown
    for e in shown:
        n, text = e.split(": ", 1)
        assert lines[int(n) - 1].strip()[:300] == text, e


def test_command_timeout_must_be_positive(tmp_path):
    # --timeout -1 stopped the command at once and diagnosed nothing; nan was a ValueError traceback
    for value in ("-1", "0", "nan"):
        result = bugatlas("diagnose", "--command", "echo hi", "--timeout", value, "--db", str(tmp_path / "x.db"))
        assert result.returncode == 2 and "--timeout" in result.stderr and "Traceback" not in result.stderr, value
