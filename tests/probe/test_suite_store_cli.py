"""Suites as data, user checks, JSON/JUnit output, findings in the store, the CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from tests.probe.faulty_server import FaultyServer
from typer.testing import CliRunner

from bugatlas import Store
from bugatlas.cli import app
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.probe import (
    builtin_suites,
    load_suite,
    parse_overrides,
    probe_findings_frame,
    run_probe,
    save_probe_report,
)
from bugatlas.probe.output import write_junit
from bugatlas.probe.storage import probe_run_results, probe_runs_frame


def test_builtin_suites_load_and_validate_against_liu2025():
    assert {"default", "quick"} <= set(builtin_suites())
    default = load_suite("default")
    assert default.taxonomy == "liu2025"
    quick = load_suite("quick")
    assert [c.id for c in quick.checks][0] == "smoke" and len(quick.checks) < len(default.checks)
    assert quick.check("load").params["concurrency"] == 3  # overrides applied


def test_user_suite_extends_overrides_and_adds_request_checks(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        """
name: mine
extends: quick
only: [smoke, determinism]
overrides:
  determinism: {repeats: 4}
checks:
  - id: chat_stops
    oracle: request
    params:
      path: /chat/completions
      body: {messages: [{role: user, content: hi}], max_tokens: 64, temperature: 0}
      expect:
        status: 200
        assert:
          - {path: choices.0.finish_reason, op: equals, value: stop}
          - {path: choices.0.message.content, op: not_contains, value: "<end_of_turn>"}
    symptom: Unexpected Output
    unexpected_output: Length
  - id: streamed_done
    oracle: request
    params:
      path: /completions
      stream: true
      body: {prompt: hi, max_tokens: 4}
      expect: {status: 2xx, assert: [{path: done, op: equals, value: true}]}
    symptom: Feature Failure
""",
        encoding="utf-8",
    )
    suite = load_suite(path)
    assert [c.id for c in suite.checks] == ["smoke", "determinism", "chat_stops", "streamed_done"]
    assert suite.check("determinism").params["repeats"] == 4
    with FaultyServer() as srv:
        ok = run_probe(srv.base_url, suite=suite, timeout=5)
        srv.set_faults(["leak_special", "broken_sse"])
        bad = run_probe(srv.base_url, suite=suite, timeout=5)
    assert ok.ok, [(r.id, r.message) for r in ok.results]
    failed = {r.id: r for r in bad.failures()}
    assert set(failed) == {"chat_stops", "streamed_done"}
    assert "not_contains" in failed["chat_stops"].message
    assert failed["chat_stops"].symptom == "Unexpected Output" and failed["chat_stops"].unexpected_output == "Length"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("checks: [{id: a, oracle: nope}]", "unknown oracle 'nope'"),
        ("checks: [{id: a, oracle: smoke, symptom: Explosion}]", "'Explosion' is not a liu2025 symptom"),
        ("checks: [{id: a, oracle: smoke, unexpected_output: Loud}]", "unexpected_output 'Loud'"),
        ("checks: [{id: a, oracle: smoke, colour: red}]", "unknown keys colour"),
        ("classification: {meltdown: Crash}\nchecks: []", "unknown failure kind"),
        ("checks: [{oracle: smoke}]", "needs at least `id` and `oracle`"),
        ("[1, 2", "not valid YAML"),
        ("checks: 5", "`checks` must be a list"),
        ("extends: default\nonly: smoke", "`only` must be a list"),
        ("extends: default\noverrides: [load]", "`overrides` must be a mapping"),
        # a misspelt key (params for overrides) was silently ignored: the suite ran unchanged
        ("extends: default\nparams: {load: {concurrency: 2}}", "unknown keys params"),
        # the same id twice in one file: the first silently never ran
        ("checks: [{id: a, oracle: smoke}, {id: a, oracle: models}]", "checks[1]: id 'a' is already checks[0]"),
    ],
)
def test_bad_suites_fail_with_one_clear_line(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match=None) as exc:
        load_suite(path)
    assert fragment in str(exc.value) and str(path) in str(exc.value)


def test_overrides_parse_yaml_values():
    assert parse_overrides(["load.concurrency=16", "stop.max_tokens=40", "max_tokens.limits=[1, 2]"]) == {
        "load": {"concurrency": 16}, "stop": {"max_tokens": 40}, "max_tokens": {"limits": [1, 2]}}
    with pytest.raises(BadInputError, match="CHECK.PARAM=VALUE"):
        parse_overrides(["concurrency=3"])


def test_findings_are_stored_and_framed(tmp_path):
    with FaultyServer(["ignore_n", "leak_special"]) as srv:
        report = run_probe(srv.base_url, suite="quick", timeout=5)
        report_n = run_probe(srv.base_url, timeout=5, only=["n", "special_tokens"])
    with Store(tmp_path / "s.db") as store:
        pid = save_probe_report(store, report)
        pid2 = save_probe_report(store, report_n)
        df = probe_findings_frame(store)
        latest = probe_findings_frame(store, latest_only=True)
        runs = probe_runs_frame(store)
        results = probe_run_results(store, pid)
    assert list(df.check_id) == ["special_tokens", "n", "special_tokens"]
    assert set(df.symptom) == {"Unexpected Output", "Feature Failure"}
    row = df.iloc[0]
    assert row.unexpected_output == "Character" and row.model == "faulty-7b" and row.taxonomy == "liu2025"
    assert "<|eot_id|>" in json.dumps(row.evidence)
    assert set(latest.probe_run_id) == {pid2}
    assert list(runs.failed) == [1, 2] and len(results) == len(report.results)


def test_junit_xml(tmp_path):
    with FaultyServer(["ignore_stop"]) as srv:
        report = run_probe(srv.base_url, timeout=5, only=["smoke", "stop", "roundtrip"])
    path = write_junit(report, tmp_path / "probe.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    stop = next(c for c in suite.iter("testcase") if c.get("name") == "stop")
    assert stop.find("failure").get("type") == "Feature Failure"
    assert "stop string" in stop.find("failure").get("message")


def test_cli_probe_json_junit_store_and_exit_codes(tmp_path):
    runner = CliRunner()
    db = tmp_path / "study.db"
    with FaultyServer() as srv:
        ok = runner.invoke(app, ["probe", "--base-url", srv.base_url, "--suite", "quick", "--timeout", "5",
                                 "--json", "--set", "load.concurrency=2"])
        assert ok.exit_code == 0, ok.output
        data = json.loads(ok.output)
        assert data["ok"] and data["counts"]["fail"] == 0 and data["model"] == "faulty-7b"
        srv.set_faults(["ignore_max_tokens"])
        junit = tmp_path / "j.xml"
        bad = runner.invoke(app, ["probe", "--base-url", srv.base_url, "--only", "max_tokens", "--only", "smoke",
                                  "--junit", str(junit), "--db", str(db)])
        assert bad.exit_code == 1, bad.output
        assert "FAIL" in bad.output and "Unexpected Output" in bad.output and "stored as probe run" in bad.output
        assert junit.exists()
    listed = runner.invoke(app, ["probe-findings", "--db", str(db), "--json"])
    assert listed.exit_code == 0
    assert [f["check_id"] for f in json.loads(listed.output)] == ["max_tokens"]
    # an unknown check id and a dead server each fail with one clear line
    unknown = runner.invoke(app, ["probe", "--base-url", "http://127.0.0.1:9/v1", "--only", "nope"])
    assert isinstance(unknown.exception, BadInputError) and "no check 'nope'" in str(unknown.exception)
    down = runner.invoke(app, ["probe", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "2"])
    assert isinstance(down.exception, BugAtlasError) and "cannot reach the server" in str(down.exception)


@pytest.mark.parametrize("url", ["notaurl", "127.0.0.1:8000/v1", "ftp://host/v1"])
def test_base_url_without_http_is_one_clear_line(url):
    with pytest.raises(BadInputError, match="expected an http"):
        run_probe(url, suite="quick", timeout=1)
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bugatlas.cli", "probe", "--base-url", url, "--suite", "quick"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "expected an http" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["http://256.1.1.1:8000/v1", "http://127.0.0.1:80a/v1", "http://[::1/v1"])
def test_a_malformed_base_url_is_one_clear_line_not_an_httpx_traceback(url):
    with pytest.raises(BadInputError, match="not a valid URL"):
        run_probe(url, suite="quick", timeout=1)


def test_junit_into_a_missing_directory_is_refused_before_probing(tmp_path):
    import subprocess
    import sys

    with FaultyServer() as srv:
        r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "probe", "--base-url", srv.base_url, "--only", "smoke",
                            "--junit", str(tmp_path / "no" / "p.xml")], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "--junit" in r.stderr and "Traceback" not in r.stderr
        assert srv.requests == 0  # refused before any request


def test_junit_that_is_a_directory_or_cannot_be_written_loses_no_results(tmp_path):
    import os
    import subprocess
    import sys

    db = tmp_path / "p.db"
    with FaultyServer(["ignore_n"]) as srv:
        # a directory passed the parent check, the whole run went by, then IsADirectoryError
        r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "probe", "--base-url", srv.base_url, "--only", "smoke",
                            "--junit", str(tmp_path)], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert r.returncode == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr
        assert srv.requests == 0
        if os.path.exists("/dev/full"):  # a write that fails after the run: results are kept
            r = subprocess.run([sys.executable, "-m", "bugatlas.cli", "probe", "--base-url", srv.base_url,
                                "--only", "smoke", "--only", "n", "--junit", "/dev/full", "--db", str(db)],
                               capture_output=True, text=True, timeout=120)  # fmt: skip
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-500:]
            assert "--junit /dev/full: cannot write" in r.stderr and "stored as probe run 1" in r.stdout
            with Store(db) as st:
                assert list(probe_findings_frame(st)["check_id"]) == ["n"]


def test_a_model_the_server_refuses_is_bad_input_not_findings(tmp_path):
    # every check would fail with HTTP 404 and be stored as the engine's "findings"
    db = tmp_path / "probe.db"
    with FaultyServer() as srv:
        res = CliRunner().invoke(app, ["probe", "--base-url", srv.base_url, "--model", "llama-typo",
                                       "--timeout", "5", "--db", str(db)])  # fmt: skip
        assert isinstance(res.exception, BadInputError), res.output
        msg = str(res.exception)
        assert "--model llama-typo" in msg and "HTTP 404" in msg and "faulty-7b" in msg
        # a name the server serves although /models does not list it (an alias) is probed
        srv.set_faults(["accept_unknown_model"])
        alias = run_probe(srv.base_url, model="alias", only=["smoke"], timeout=5)
        assert alias.ok and alias.model == "alias"
        # a URL that is not the API root: the status and a hint, not "lists no model"
        with pytest.raises(BadInputError, match=r"GET /models answered HTTP 404 .*under /v1"):
            run_probe(srv.base_url + "/api", only=["smoke"], timeout=5)
    assert not db.exists()  # nothing stored


def test_list_with_json_prints_the_checks_as_json():
    res = CliRunner().invoke(app, ["probe", "--base-url", "http://127.0.0.1:9/v1", "--suite", "quick", "--list",
                                   "--json", "--set", "load.concurrency=2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["suite"] == "quick" and [c["id"] for c in doc["checks"]] == [c.id for c in load_suite("quick").checks]
    assert next(c for c in doc["checks"] if c["id"] == "load")["params"]["concurrency"] == 2


def test_unreadable_suite_and_bad_set_values_are_one_line_errors(tmp_path):
    binary = tmp_path / "suite.yaml"
    binary.write_bytes(b"\xff\xfename: x\n")
    with pytest.raises(BadInputError, match="--suite .*suite.yaml: cannot read it"):
        load_suite(binary)
    with pytest.raises(BadInputError, match="--suite .*: cannot read it"):
        load_suite(tmp_path)  # a directory
    with pytest.raises(BadInputError, match=r"--set load.concurrency=\[: the value is not valid YAML"):
        parse_overrides(["load.concurrency=["])
