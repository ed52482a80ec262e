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
