"""The annotation commands on the shared corpus with the built-in liu2025 codebook."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bugatlas.cli import app
from bugatlas.errors import BadInputError


def _run(args, db):
    r = CliRunner().invoke(app, [*args, "--db", str(db)])
    assert r.exit_code == 0, r.output
    return r.output


def test_sample_assign_agreement_gold_cli(corpus_store, tmp_path):
    db = corpus_store.path
    corpus_store.close()
    out = json.loads(_run(["sample", "--taxonomy", "liu2025", "--size", "50", "--seed", "7", "--json"], db))
    assert out["size"] == 50 and out["dimensions"] == ["symptom", "root_cause", "component", "phase"]
    assert {s["stratum"] for s in out["strata"]} == {"vllm-project/vllm", "ggml-org/llama.cpp", "sgl-project/sglang"}
    cochran = json.loads(_run(["sample", "--taxonomy", "liu2025", "--name", "full", "--json"], db))
    assert all(s["size"] < s["population"] for s in cochran["strata"]) and cochran["size"] > 600
    text = _run(["sample", "--taxonomy", "liu2025", "--name", "shown", "--size", "9"], db)
    assert "population" in text and "total" in text
    a = json.loads(_run(["assign", "--sample", "liu2025", "--annotators", "alice,bob", "--k", "2",
                         "--arbitrator", "carol", "--owner", "dana", "--json"], db))
    assert a["annotators"] == {"alice": {"pilot": 0, "main": 50}, "bob": {"pilot": 0, "main": 50}}
    rep = json.loads(_run(["agreement", "--taxonomy", "liu2025", "--sample", "liu2025", "--json"], db))
    assert rep["items_annotated"] == 0 and set(rep["dimensions"]) == {"symptom", "root_cause", "component", "phase"}
    g = json.loads(_run(["gold", "--sample", "liu2025", "--json"], db))
    assert g["incomplete"] == 50 and g["gold_labels"] == 0
    r = CliRunner().invoke(app, ["sample", "--taxonomy", "liu2025", "--size", "5", "--db", str(db)])
    assert isinstance(r.exception, BadInputError) and "exists" in str(r.exception)


def test_labelstudio_cli_round_trip(corpus_store, tmp_path):
    import xml.etree.ElementTree as ET

    from bugatlas.annotate import assign, draw_sample, queue_for, save_annotation

    s = draw_sample(corpus_store, "liu2025", size=4, seed=3)
    assign(corpus_store, s, ["alice", "bob"], k=2)
    for a in ("alice", "bob"):
        for q in queue_for(corpus_store, s, a):
            save_annotation(corpus_store, s, q["assignment_id"], a,
                            {"symptom": ["Repetition", "Crash"], "root_cause": ["Misused API"], "phase": "Engine Setup"},
                            status="done")
    db = corpus_store.path
    corpus_store.close()
    out = json.loads(_run(["labelstudio", "export", str(tmp_path / "ls"), "--with-annotations", "--json"], db))
    assert out["tasks"] == 4 and out["annotations"] == 8
    cfg = ET.parse(tmp_path / "ls" / "config.xml").getroot()
    assert [t.get("name") for t in cfg.iter("Taxonomy")] == ["symptom", "root_cause", "component", "phase"]
    got = json.loads(_run(["labelstudio", "import", str(tmp_path / "ls" / "tasks.json"), "--sample", "copy",
                           "--taxonomy", "liu2025", "--json"], db))
    assert got["annotations"] == 8 and got["annotators"] == ["alice", "bob"]
    rep = json.loads(_run(["agreement", "--sample", "copy", "--json"], db))
    pair = rep["dimensions"]["phase"]["levels"]["phase"]["pairs"][0]
    assert pair["items"] == 4 and pair["observed_agreement"] == 1.0


def test_annotate_command_serves_on_loopback_only(corpus_store, tmp_path):
    """`bugatlas annotate` as a user runs it: a real process, bound to 127.0.0.1 by default."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from bugatlas.annotate import assign, draw_sample

    s = draw_sample(corpus_store, "liu2025", size=3, seed=1)
    assign(corpus_store, s, ["alice", "bob"], k=2)
    db = corpus_store.path
    corpus_store.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "bugatlas.cli", "annotate", "--port", str(port), "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "no server") from None
                time.sleep(0.3)
        assert r.status_code == 200 and "Sign in" in r.text
        listening = []
        for line in open("/proc/net/tcp").read().splitlines()[1:] + open("/proc/net/tcp6").read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                listening.append(local.rsplit(":", 1)[0])
        assert listening == ["0100007F"], listening  # 127.0.0.1 only
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_unwritable_exports_are_one_line_errors(corpus_store, tmp_path):
    from bugatlas.annotate import draw_sample

    draw_sample(corpus_store, "liu2025", size=4, seed=3)
    db = corpus_store.path
    corpus_store.close()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    r = CliRunner().invoke(app, ["gold", "--export", str(blocker / "gold.csv"), "--db", str(db)])
    assert isinstance(r.exception, BadInputError), r.output
    assert "--export" in str(r.exception) and str(blocker / "gold.csv") in str(r.exception)
    r = CliRunner().invoke(app, ["labelstudio", "export", str(blocker / "ls"), "--db", str(db)])
    assert isinstance(r.exception, BadInputError), r.output
    assert str(blocker / "ls") in str(r.exception)


def test_a_study_with_a_users_codebook_file(corpus_store, tmp_path):
    """`sample --taxonomy mine.yaml` worked, then agreement, gold, disagreements and
    labelstudio export all failed with "unknown codebook 'toy'": the sample kept only the
    codebook's name. The sample now records the file and every command loads it."""
    from bugatlas.annotate import assign, get_sample, queue_for, save_annotation

    from .conftest import toy_codebook_file

    yaml_file = toy_codebook_file(tmp_path)
    db = corpus_store.path
    corpus_store.close()
    _run(["sample", "--taxonomy", str(yaml_file), "--size", "4", "--seed", "1", "--name", "mine"], db)
    from bugatlas.store import Store

    with Store(db) as store:
        s = get_sample(store, "mine")
        assign(store, s, ["ann", "ben"], k=2)
        for a in ("ann", "ben"):
            for q in queue_for(store, s, a):
                save_annotation(store, s, q["assignment_id"], a, {"symptom": "Crash", "root_cause": "API Misuse"},
                                status="done")
    rep = json.loads(_run(["agreement", "--sample", "mine", "--json"], db))
    assert rep["taxonomy"] == "toy" and rep["items_annotated"] == 4
    assert json.loads(_run(["agreement", "--taxonomy", str(yaml_file), "--json"], db))["sample"] == "mine"
    assert json.loads(_run(["gold", "--sample", "mine", "--json"], db))["agreed"] == 4
    _run(["disagreements", "--sample", "mine"], db)
    assert json.loads(_run(["labelstudio", "export", str(tmp_path / "ls"), "--sample", "mine",
                            "--with-annotations", "--json"], db))["annotations"] == 8


def test_agreement_table_is_readable_at_80_columns_with_three_annotators(corpus_store):
    """With three annotators the Cohen κ column held three "pair value" lines squeezed into
    one cell: at COLUMNS=80 pair names were cut ("alice+car…"), values wrapped onto lines of
    their own, and the agree column's lines no longer matched the pairs they belonged to."""
    import os
    import subprocess
    import sys

    from bugatlas.annotate import agreement, assign, draw_sample, queue_for, save_annotation
    from bugatlas.annotate.agreement import headline

    people = ["alice", "bob", "carol_long_name"]
    s = draw_sample(corpus_store, "liu2025", size=6, seed=3)
    assign(corpus_store, s, people, k=3)
    symptoms = ["Crash", "Repetition", "System Hang"]
    for n, a in enumerate(people):
        for i, q in enumerate(queue_for(corpus_store, s, a)):
            save_annotation(corpus_store, s, q["assignment_id"], a,
                            {"symptom": [symptoms[(i * (n + 1)) % 3]], "root_cause": ["Misused API"],
                             "phase": "Engine Setup"}, status="done")  # fmt: skip
    rows = headline(agreement(corpus_store, s))
    db = corpus_store.path
    corpus_store.close()
    out = subprocess.run([sys.executable, "-m", "bugatlas.cli", "agreement", "--db", str(db)],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, check=True).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert "…" not in out, out
    sym = rows[0]  # symptom, the first level: each pair on one line with its κ and agreement
    assert sym["level"] == "symptom" and len(sym["cohen_kappa"]) == 3
    for pair, kappa in sym["cohen_kappa"].items():
        agree = f"{sym['observed_agreement'][pair]:.0%}"
        first = next(ln for ln in lines if f" {pair} " in ln)
        assert f"{kappa:.3f}" in first and agree in first, out
