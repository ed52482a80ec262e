"""Base rates by where an issue was filed (codebook ``domains:``): yu2026's model learned from
engine issues; for an issue of a model-release repository its top levels move to the shares the
study counted there, and the evidence says so. Real issue text from the shared corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from bugatlas.classify import read_label_records, taxonomy_spec
from bugatlas.classify.api import build_classifier
from bugatlas.classify.base import level_probs
from bugatlas.classify.domains import domains_of, shift
from bugatlas.errors import BadInputError
from bugatlas.store.records import Issue
from bugatlas.taxonomy.loader import validate_codebook

TRAINSET = Path(__file__).resolve().parents[2] / "bench" / "trainset-yu2026" / "labels.jsonl"


def test_model_release_shares_come_from_the_published_counts() -> None:
    (dom,) = domains_of(taxonomy_spec("yu2026"))
    assert dom.priors["stage"]["Fine-tuning"] == pytest.approx(150 / 705)
    assert dom.priors["root_cause_category"]["User Configuration and Usage Fault"] == pytest.approx(179 / 703)
    assert set(dom.priors) == {"root_cause_category", "stage"}  # not the symptom (BENCHMARKS.md)
    for repo in ("QwenLM/Qwen2.5", "QwenLM/Qwen", "deepseek-ai/DeepSeek-V3", "meta-llama/llama3", "meta-llama/codellama"):
        assert dom.matches(repo), repo
    for repo in ("vllm-project/vllm", "QwenLM/Qwen-Agent", "deepseek-ai/DeepEP", "meta-llama/llama-stack"):
        assert not dom.matches(repo), repo
    assert domains_of(taxonomy_spec("liu2025")) == []


def test_shift_moves_probabilities_to_the_target_base_rates() -> None:
    p = {"a": 0.6, "b": 0.4}
    assert shift(p, {"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == pytest.approx(p)
    moved = shift(p, {"a": 0.9, "b": 0.1}, {"a": 0.1, "b": 0.9})
    assert moved["b"] > 0.95 and sum(moved.values()) == pytest.approx(1)
    # a class the model never saw (share 0) is not multiplied without bound
    assert shift({"a": 0.999, "b": 0.001}, {"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.5})["a"] > 0.6


BAD = [
    ("[{name: x, repos: [a/b], priors: {color: {red: 1}}}]", "domains: x: priors: 'color' is not a top level"),
    ("[{name: x, repos: [a/b], priors: {area: {Nope: 1}}}]", "domains: x: priors: area: not a category of that level: 'Nope'"),
    ("[{name: x, repos: [a/b], priors: {area: {Memory: -1}}}]", "domains: x: priors: area: counts or shares must be"),
    ("[{name: x, repos: [a/b], priors: {area: {Memory: .inf, Code: 1}}}]", "domains: x: priors: area: counts or shares must be"),
    ("[{name: x, repos: [nobody], priors: {area: {Memory: 1}}}]", "domains: x: repos: a list of owner/name globs"),
    ("[{name: x, repos: [a/b], priors: published_count}]", "domains: x: priors: published_count, but no top level"),
    ("[{name: x, repos: [a/b], priors: {area: published_count}}]", "domains: x: priors: area: published_count, but not"),
    ("{name: x}", "domains: a list of"),
]


@pytest.mark.parametrize(("domains", "message"), BAD)
def test_a_user_codebook_with_a_wrong_domain_is_one_line(tmp_path, domains: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine-domains\ndimensions:\n  cause:\n    levels: [area, cause]\n    categories:\n"
                    "      - {id: mem, name: Memory}\n      - {id: oom, name: Out of Memory, parent: mem}\n"
                    "      - {id: code, name: Code}\n      - {id: bug, name: Logic Bug, parent: code}\n"
                    f"domains: {domains}\n")
    with pytest.raises(BadInputError) as err:
        domains_of(taxonomy_spec(str(path)))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)
    assert validate_codebook(path) == [str(err.value)]  # `taxonomy validate` finds it before classify does


def test_an_issue_of_a_model_release_repository_gets_its_base_rates(corpus_records) -> None:
    keys = [(r.repo, r.number) for r in read_label_records(TRAINSET, taxonomy="yu2026")][:80]
    engine = [Issue(repo=r, number=n, title=corpus_records[r, n]["title"], body=corpus_records[r, n]["body"])
              for r, n in keys]
    # the same texts, as if filed in Qwen's repository
    release = [Issue(repo="QwenLM/Qwen2.5", number=i, title=x.title, body=x.body) for i, x in enumerate(engine, 1)]
    ens = build_classifier("yu2026")
    plain = build_classifier("yu2026")
    plain.domains = []
    assert ens.supervised.heldout_shares  # the shipped model is calibrated: held-out base rates
    assert "domains-" in ens.version and "domains-" not in plain.version
    spec = ens.spec

    def mean(preds, dim: str, top: str, value: str) -> float:
        return sum(level_probs(spec, dim, p.scores[dim], top).get(value, 0.0) for p in preds) / len(preds)

    at_engine, at_release, unmoved = ens.predict(engine), ens.predict(release), plain.predict(release)
    # an engine issue is not moved: same labels as without domains
    assert [p.labels for p in at_engine] == [p.labels for p in plain.predict(engine)]
    # in the model-release repositories fine-tuning and user configuration faults are far more common
    assert mean(at_release, "stage", "stage", "Fine-tuning") > 3 * mean(unmoved, "stage", "stage", "Fine-tuning")
    user = "User Configuration and Usage Fault"
    assert mean(at_release, "root_cause", "root_cause_category", user) > \
        1.5 * mean(unmoved, "root_cause", "root_cause_category", user)
    changed = [p for p, q in zip(at_release, unmoved, strict=True)
               if p.labels["root_cause_category"] and q.labels["root_cause_category"]
               and p.labels["root_cause_category"] != q.labels["root_cause_category"]]
    # every one gets the stage line; the models' 0.5% Fine-tuning / 99.5% Inference is not "0%" / "100%"
    inference = [p for p in at_release if p.labels["stage"] == ["Inference"]]
    assert inference and all("model-release repositories (Yu et al. 2026): Inference is 79% of failures there, "
                             ">99% where the models learned (base rates moved)" in p.evidence["stage"]
                             for p in inference)
    assert changed  # and where it changed the answer, the evidence gives that reason first
    for p in changed:
        assert p.evidence["root_cause_category"][0].startswith("model-release repositories (Yu et al. 2026): "
                                                                f"{p.labels['root_cause_category'][0]} is ")
        # the levels below stay inside the (new) category
        rc = spec.dims["root_cause"]
        inside = {rc.store[leaf].get("root_cause_subcategory")
                  for leaf in rc.leaves_under("root_cause_category", p.labels["root_cause_category"][0])}
        assert set(p.labels["root_cause_subcategory"]) <= inside


def test_counts_given_per_top_level_become_shares(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine-counts\ndimensions:\n  cause:\n    levels: [area, cause]\n    categories:\n"
                    "      - {id: mem, name: Memory}\n      - {id: oom, name: Out of Memory, parent: mem}\n"
                    "      - {id: code, name: Code}\n      - {id: bug, name: Logic Bug, parent: code}\n"
                    "domains: [{name: ours, repos: [Our-Org/*], priors: {area: {Memory: 3, Code: 1}}}]\n")
    (dom,) = domains_of(taxonomy_spec(str(path)))
    assert dom.priors == {"area": pytest.approx({"Memory": 0.75, "Code": 0.25})}
    assert dom.matches("our-org/engine") and not dom.matches("other/engine")


def test_a_model_without_base_rates_in_the_mix_moves_nothing(corpus_records) -> None:
    """A yu2026 model pickled before base rates were recorded (`--model` from an older `train`)
    mixed with the shipped liu2025 donor: the mix's base rates are unknown, so its top levels are
    not moved (the donor's alone said 0% User Configuration and Usage Fault, and moved half the
    issues there)."""
    from bugatlas.classify.supervised import SupervisedModel, shipped_model

    old = SupervisedModel.loads(shipped_model("yu2026").dumps(), "old")
    old.label_shares, old.heldout_shares = {}, {}  # as a model pickled before them loads
    keys = [(r.repo, r.number) for r in read_label_records(TRAINSET, taxonomy="yu2026")][:40]
    release = [Issue(repo="QwenLM/Qwen2.5", number=i, title=corpus_records[k]["title"], body=corpus_records[k]["body"])
               for i, k in enumerate(keys, 1)]
    ens = build_classifier("yu2026", supervised=old)
    plain = build_classifier("yu2026", supervised=old, use_domains=False)
    assert ens.donors and not ens._shifted_tops() and "domains-" not in ens.version
    moved, unmoved = ens.predict(release), plain.predict(release)
    assert [p.labels for p in moved] == [p.labels for p in unmoved]
    assert not any("base rates moved" in line for p in moved for lines in p.evidence.values() for line in lines)
