"""Failure classes resolve against the installed codebooks; example issues come from the store."""

from __future__ import annotations

import pytest
from tests.preflight.helpers import gpu_machine

from bugatlas.preflight import load_machine, parse_command, run_preflight
from bugatlas.preflight._data import load
from bugatlas.preflight.findings import (
    EXIT_BLOCK,
    EXIT_PASS,
    EXIT_WARN,
    Finding,
    Report,
    failure_classes,
    find_example,
)


@pytest.mark.parametrize("check_id", sorted(load("checks")))
def test_every_failure_class_is_a_category_of_its_codebook(check_id):
    classes = failure_classes(check_id)
    assert classes, check_id
    for fc in classes:
        assert fc.in_codebook is True, (check_id, fc)
        assert fc.definition and fc.group


@pytest.mark.parametrize("check_id", sorted(load("checks")))
def test_a_class_spelled_as_the_published_dataset_maps_onto_its_codebook_name(check_id):
    # the artifact spelling finds the imported Open-LLM-Failures records of this class: it must be
    # the label that the codebooks' own mapping turns into this class, or examples and counts
    # would disagree with `taxonomy map` (the 5 "Tokenizer File Error" records map to D.2)
    from bugatlas.taxonomy.mapping import get_mapping

    for fc in failure_classes(check_id):
        if fc.artifact:
            mapped = get_mapping(f"{fc.taxonomy}-artifact", fc.taxonomy).map(fc.dimension, fc.artifact)
            assert mapped is not None and mapped.name == fc.value, (check_id, fc.artifact, mapped)


def test_exit_codes_do_not_collide_with_cli_errors():
    assert (EXIT_PASS, EXIT_WARN, EXIT_BLOCK) == (0, 10, 20)
    from bugatlas.errors import BadInputError, BugAtlasError

    assert {BadInputError.exit_code, BugAtlasError.exit_code}.isdisjoint({EXIT_WARN, EXIT_BLOCK})
    r = Report([Finding("res.context", "pass", "ok"), Finding("res.context", "skip", "n/a")], {}, {}, None)
    assert r.exit_code == 0
    r.findings.append(Finding("res.context", "warn", "w"))
    assert r.exit_code == 10
    r.findings.append(Finding("res.context", "block", "b"))
    assert r.exit_code == 20


def test_examples_from_the_real_corpus(corpus_store):
    # the bf16-on-V100 failure is in the corpus verbatim (vLLM's own error message in the title)
    ex = find_example(corpus_store, "env.kernels", failure_classes("env.kernels"))
    assert ex and "Bfloat16 is only supported" in ex["title"] and ex["url"].startswith("https://github.com/")
    # safetensors corruption has no text match: the Open-LLM-Failures label gives the example
    ex = find_example(corpus_store, "assets.safetensors", failure_classes("assets.safetensors"))
    assert ex is not None and ex["via"].startswith("label yu2026-artifact/root_cause")
    labelled = corpus_store.query(
        "SELECT repo, issue_number FROM labels WHERE taxonomy = 'yu2026-artifact' AND value = ?",
        ("Model Corruption Issues - Safetensor File Corruption",),
    )
    assert (ex["repo"], ex["number"]) in {(r["repo"], r["issue_number"]) for r in labelled}


def test_blocking_findings_link_examples_when_a_store_is_given(corpus_store, tmp_path):
    machine = load_machine(gpu_machine(tmp_path))
    launch = parse_command("vllm serve meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --max-model-len 131072")
    report = run_preflight(launch, machine, store=corpus_store)
    for f in report.findings:
        if f.severity == "block":
            assert f.example is not None, f.check
            issue = corpus_store.get_issue(f.example["repo"], f.example["number"])
            assert issue is not None
        else:
            assert f.example is None


def test_every_registered_check_is_described_and_tested():
    from pathlib import Path

    from bugatlas.preflight import (  # noqa: F401
        api,  # noqa: F401 - registers the checks
        assets,
        tokenizer,
    )
    from bugatlas.preflight.context import REGISTRY

    registered = {cid for cid, _ in REGISTRY}
    assert registered == set(load("checks"))
    here = Path(__file__).parent
    text = "".join(p.read_text() for p in here.glob("test_*.py") if p.name != Path(__file__).name)
    untested = sorted(cid for cid in registered if f'"{cid}"' not in text)
    assert not untested, f"checks without a test: {untested}"
