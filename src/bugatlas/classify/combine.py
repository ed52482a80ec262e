"""Rules first for strong signatures, the text model for the rest, the LLM (optional) for
what both are unsure about; no label when the final confidence is below the threshold."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    DimScores,
    LabelSet,
    Prediction,
    Threshold,
    decide,
    level_probs,
    normalize,
)
from bugatlas.classify.domains import Domain, domain_of, domains_of, shift
from bugatlas.classify.model import TextModel
from bugatlas.classify.rules import RuleClassifier
from bugatlas.classify.schema import TaxonomySpec, taxonomy_spec
from bugatlas.classify.supervised import SupervisedModel
from bugatlas.classify.text import Doc, issue_doc
from bugatlas.store.records import Issue

NO_TEXT = "no title or body: nothing to judge"
# A donor's weight at a top level that this taxonomy's own supervised model also answers (where
# it has none, the donor decides alone). Two models fitted on different labels of the same
# issues disagree in useful ways: yu2026's own model (1,477 labels) with the liu2025 model lent
# at this weight beat either alone at the symptom and root-cause categories (the root-cause
# leaf, chosen inside the category, does best without it). Chosen by 5-fold CV on the yu2026 training labels, the
# liu2025 model refitted in each fold (BENCHMARKS.md, "yu2026").
LENT_WEIGHT = 0.3


def has_text(issue: Issue) -> bool:  # also the store's rule for which issues classify takes
    return bool((issue.title or "").strip() or (issue.body or "").strip())


def blend(r: DimScores, m: DimScores, alpha: float) -> DimScores:
    """alpha * rules + (1 - alpha) * model, for leaves and every level; evidence of both."""
    probs = normalize({k: alpha * r.probs.get(k, 0.0) + (1 - alpha) * m.probs.get(k, 0.0)
                       for k in set(r.probs) | set(m.probs)})
    levels = {}
    for level in set(r.level_probs) | set(m.level_probs):
        rp, mp = r.level_probs.get(level, {}), m.level_probs.get(level, {})
        levels[level] = normalize({k: alpha * rp.get(k, 0.0) + (1 - alpha) * mp.get(k, 0.0)
                                   for k in set(rp) | set(mp)})
    evidence: dict[str, list[str]] = {}
    for src in (r.evidence, m.evidence):
        for k, v in src.items():
            evidence.setdefault(k, []).extend(v)
    return DimScores(probs=probs, evidence=evidence, strength=r.strength, level_probs=levels,
                     informative=r.strength > 0 or m.informative)


def overlay(s: DimScores, base: DimScores) -> DimScores:
    """The supervised model's scores where it has a head (it already weighs the rules'
    scores as features), the rules/weak-model blend for the levels it was not trained on
    (e.g. Unexpected Output sub-types when the labels stop at the symptom)."""
    evidence: dict[str, list[str]] = {}
    for src in (base.evidence, s.evidence):  # signature lines first: they say most
        for k, v in src.items():
            evidence.setdefault(k, []).extend(v)
    return DimScores(probs=s.probs or base.probs, evidence=evidence, strength=base.strength,
                     level_probs={**base.level_probs, **s.level_probs})


def lend(own: DimScores, top_dim: str, probs: dict[str, float], evidence: list[str],
         weight: float = 1.0) -> DimScores:
    """``own`` with its top level's probabilities replaced by a donor's mapped ones (``weight``
    1), or mixed with them (``weight`` × the donor's + the rest × its own); the levels below
    stay this taxonomy's (they are chosen inside the top value)."""
    # the donor's line names its own most likely category: shown only where that one is given
    backs = max(probs, key=probs.__getitem__)
    mine = own.level_probs.get(top_dim, {})
    if weight < 1.0 and mine:
        probs = normalize({k: weight * probs.get(k, 0.0) + (1 - weight) * mine.get(k, 0.0)
                           for k in set(probs) | set(mine)})
    merged = {k: list(v) for k, v in own.evidence.items()}
    merged[backs] = evidence + merged.get(backs, [])
    return DimScores(probs=own.probs, evidence=merged, strength=own.strength,
                     level_probs={**own.level_probs, top_dim: probs}, informative=True)


def _share(x: float) -> str:
    """A share as a percentage; one that rounds to 0% or 100% without being it says so (the
    models' 0.5% Fine-tuning is not "0%")."""
    shown = f"{x:.0%}"
    return "<1%" if shown == "0%" and x > 0 else ">99%" if shown == "100%" and x < 1 else shown


class Donor:
    """Another taxonomy's classifier whose labels map onto this one by its codebook's
    ``mappings:`` (data): e.g. liu2025's model, trained on human labels of engine issues, gives a
    yu2026 run its symptom and root-cause categories. Only a dimension whose every top-level source value maps
    is taken, and only at this taxonomy's top level (the mapped probabilities add up there)."""

    def __init__(self, classifier: Ensemble, mapping: Any):
        self.classifier = classifier
        self.mapping = mapping
        self.name = classifier.spec.name
        src = classifier.spec
        # source dim -> (target dim, target top out dim, {source top value -> target top value})
        self.tops: dict[str, tuple[str, str, dict[str, str]]] = {}
        for sdim, sspec in src.dims.items():
            tdim = mapping.target_dimension(sdim)
            if tdim is None:
                continue
            values = sspec.values(sspec.out_dims[0])
            cats = [mapping.map(sdim, v) for v in values]
            if not values or None in cats:  # an unmapped value's probability would go nowhere
                continue
            places = [mapping.target.dimensions[tdim].store_labels(c.id)[0] for c in cats]
            top_dim = places[0][0]  # the target's top level: every path starts there
            self.tops[sdim] = (tdim, top_dim, {v: value for v, (_, value) in zip(values, places, strict=True)})

    @property
    def version(self) -> str:
        # the mapping is part of what the labels are: an edited mapping (a package upgrade)
        # must not leave a store's issues "already labeled by this version" with the old one
        table = repr(sorted((s, t, top, sorted(m.items())) for s, (t, top, m) in self.tops.items()))
        return f"{self.name}:{self.classifier.version}:map-{hashlib.sha256(table.encode()).hexdigest()[:8]}"

    def score(self, issues: Sequence[Issue], docs: Sequence[Doc] | None = None
              ) -> list[dict[str, tuple[str, dict[str, float], list[str]]]]:
        """Per issue: target dim -> (its top out dim, probabilities there, evidence line)."""
        out = []
        spec = self.classifier.spec
        for scored, _ in self.classifier.score(issues, docs=docs, only=self.tops):
            mapped = {}
            for sdim, (tdim, top_dim, table) in self.tops.items():
                sc = scored.get(sdim)
                if sc is None:
                    continue
                src_p = level_probs(spec, sdim, sc, spec.dims[sdim].out_dims[0])
                probs: dict[str, float] = {}
                for value, p in src_p.items():
                    probs[table[value]] = probs.get(table[value], 0.0) + p
                # the line names what the lent category came from: the source values that map
                # onto the most likely target (not the most likely source value, which may map
                # elsewhere: Crash 0.41 -> Runtime Crash under a lent Incorrect Functionality 0.57)
                target = max(probs, key=probs.__getitem__)
                behind = sorted((v for v in src_p if table[v] == target), key=src_p.__getitem__, reverse=True)
                shown = [v for v in behind if src_p[v] >= 0.05] or behind[:1]
                line = (f"{self.name} model: " + " + ".join(f"{v} (p={src_p[v]:.2f})" for v in shown)
                        + f" -> {target}")
                mapped[tdim] = (top_dim, normalize(probs), [line])
            out.append(mapped)
        return out


def donors_for(taxonomy: str) -> list[Donor]:
    """Built-in codebooks that map onto ``taxonomy`` and ship a model trained on human labels."""
    from bugatlas.classify.schema import names_resolved_as_files, package_files_apply
    from bugatlas.classify.supervised import shipped_model, shipped_model_path
    from bugatlas.taxonomy.loader import BUILTIN_DIR, load_codebook
    from bugatlas.taxonomy.mapping import get_mapping

    out: list[Donor] = []
    if not package_files_apply(taxonomy_spec(taxonomy)):
        # a user's file that takes a built-in's name (an edited copy of yu2026) is not the
        # codebook the built-in mappings were written for: their categories may not exist in it
        return out
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        # only a codebook that ships a model can lend: the others are not even parsed (this runs
        # at the start of every classify, and yu2026-artifact alone is a large file)
        if path.stem == taxonomy or shipped_model_path(path.stem) is None:
            continue
        cb = load_codebook(path.stem)
        if taxonomy not in cb.mappings:
            continue
        # the lender is the codebook its name resolves to, even after a notebook loaded its own
        # file of that name by path (which would otherwise mean "liu2025" here)
        with names_resolved_as_files(cb.name):
            model = shipped_model(cb.name)
            if model is None:
                continue
            donor = Donor(Ensemble(cb.name, supervised=model), get_mapping(cb.name, taxonomy))
        if donor.tops:
            out.append(donor)
    return out


class Ensemble:
    """The combined classifier ``classify`` runs. Same fit/predict shape as its parts."""

    source_kind = "model"

    def __init__(
        self,
        taxonomy: str,
        *,
        rules: RuleClassifier | None = None,
        model: TextModel | None = None,
        supervised: SupervisedModel | None = None,
        llm: object | None = None,
        threshold: Threshold = DEFAULT_THRESHOLD,
        strong_probability: float = 0.6,
        llm_below: float = 0.6,
        donors: Sequence[Donor] = (),
        lent_weight: float = LENT_WEIGHT,
        domains: Sequence[Domain] | None = None,
    ):
        self.spec: TaxonomySpec = taxonomy_spec(taxonomy)
        self.donors = list(donors)
        if not 0.0 <= lent_weight <= 1.0:
            raise ValueError(f"lent_weight must be between 0 and 1, not {lent_weight}")
        self.lent_weight = lent_weight
        # the codebook's repositories with base rates of their own (None: the codebook's; (): none)
        self.domains = list(domains_of(self.spec) if domains is None else domains)
        self.rules = rules or RuleClassifier(taxonomy)
        self.model = model
        self.supervised = supervised
        self.llm = llm
        self.threshold = threshold
        self.strong_probability = strong_probability
        self.llm_below = llm_below
        self.name = f"ensemble:{self.spec.name}"

    @property
    def version(self) -> str:
        parts = [self.rules.version]
        if self.model is not None:
            parts.append(self.model.version)
        if self.supervised is not None:
            parts.append(self.supervised.version)
        parts += [d.version for d in self.donors]
        # where a donor is mixed in (beside this taxonomy's own model), its weight is part of the labels
        if self.supervised is not None and any(self.supervised.answers(top) for d in self.donors
                                               for _, top, _ in d.tops.values()):
            parts.append(f"lent-{self.lent_weight:g}")
        if (shifted := self._shifted_tops()):  # the labels of a domain's issues depend on both
            table = repr([(d.name, d.digest) for d in self.domains] + [(t, sorted(r.items())) for t, r in shifted])
            parts.append(f"domains-{hashlib.sha256(table.encode()).hexdigest()[:8]}")
        if self.llm is not None:
            parts.append(self.llm.version)  # type: ignore[attr-defined]
        return "+".join(parts)

    def _shifted_tops(self) -> list[tuple[str, dict[str, float]]]:
        """(top level, the base rates its probabilities carry) for each top level some domain
        moves to its own base rates."""
        if not self.domains:
            return []
        out = []
        for dspec in self.spec.dims.values():
            top = dspec.out_dims[0]
            if any(top in d.priors for d in self.domains) and (ref := self._base_rates(top)):
                out.append((top, ref))
        return out

    def _base_rates(self, top: str) -> dict[str, float] | None:
        """The base rates the combined probabilities of a top level carry, from the models that
        give it: the supervised model's, mixed with a lending donor's (mapped) at the lent
        weight, as the probabilities are (the mean of a mix is the mix of the means). None
        where no model with base rates decides it (rules alone), or where one of the models mixed
        has none (a model pickled before them): half a mix's base rates would move it wrongly."""
        own = self.supervised.base_rates(top) if self.supervised is not None and self.supervised.answers(top) else None
        for donor in self.lending_donors():
            for sdim, (_, dtop, values) in donor.tops.items():
                weight = self._lent_weight(dtop)
                if dtop != top or weight <= 0:
                    continue
                sup = donor.classifier.supervised
                src = donor.classifier.spec.dims[sdim].out_dims[0]
                theirs = sup.base_rates(src) if sup is not None and sup.answers(src) else None
                if not theirs:  # a part of the mix whose base rates are unknown: so are the mix's
                    return None
                mapped: dict[str, float] = {}
                for v, p in theirs.items():
                    mapped[values[v]] = mapped.get(values[v], 0.0) + p
                if weight >= 1:
                    return normalize(mapped)
                if own is None:  # the own model answers (weight < 1) but has none (pickled before them)
                    return None
                return normalize({k: (1 - weight) * own.get(k, 0.0) + weight * mapped.get(k, 0.0)
                                  for k in dict.fromkeys([*own, *mapped])})
        return own

    def _reprior(self, dim: str, sc: DimScores, dom: Domain, ref: dict[str, float]) -> DimScores:
        """``sc`` with its top level moved from the base rates ``ref`` to the domain's."""
        top = self.spec.dims[dim].out_dims[0]
        target = dom.priors.get(top)
        now = level_probs(self.spec, dim, sc, top) if target else {}
        if not now:
            return sc
        moved = shift(now, ref, target)
        best = max(moved, key=moved.__getitem__)
        line = (f"{dom.name}: {best} is {_share(target.get(best, 0.0))} of failures there, "
                f"{_share(ref.get(best, 0.0))} where the models learned (base rates moved)")
        evidence = {k: list(v) for k, v in sc.evidence.items()}
        # first where it changed the answer (it is then the reason), else after the issue's own
        evidence[best] = ([line] + evidence.get(best, []) if best != max(now, key=now.__getitem__)
                          else evidence.get(best, []) + [line])
        return DimScores(probs=sc.probs, evidence=evidence, strength=sc.strength,
                         level_probs={**sc.level_probs, top: moved}, informative=sc.informative)

    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> Ensemble:
        if self.model is None:  # only the heads the supervised model does not answer for
            self.model = TextModel(self.spec.name, rules=self.rules,
                                   skip_heads=sorted(self.supervised.heads) if self.supervised else ())
        self.model.fit(issues, labels)
        return self

    def _rule_weight(self, r: DimScores) -> float:
        """How far to trust the rules over the model when neither decides alone: in
        proportion to how much signature evidence there was."""
        strong = self.rules.sig.strong_score
        # (giving a model fitted on human labels more say was tried: with <= 120 dev-set
        # labels it lowered cross-validated kappa, see BENCHMARKS.md)
        return min(0.85, 0.35 + 0.5 * r.strength / strong) if r.strength > 0 else 0.25

    def _lent_weight(self, top_dim: str) -> float:
        # human labels of this taxonomy come first: a donor decides a top level alone only where
        # this taxonomy's supervised model has no head of its own (it may have one only lower
        # down, when its labels name a single top-level category); beside one it has a say
        answered = self.supervised is not None and self.supervised.answers(top_dim)
        return self.lent_weight if answered else 1.0

    def lending_donors(self) -> list[Donor]:
        """The donors whose mapped top levels this ensemble takes (for at least one dim)."""
        return [d for d in self.donors if any(self._lent_weight(top) > 0 for _, top, _ in d.tops.values())]

    def score(self, issues: Sequence[Issue], docs: Sequence[Doc] | None = None,
              only: Collection[str] | None = None) -> list[tuple[dict[str, DimScores], dict[str, str]]]:
        """Per issue: dim -> combined scores, and which kind of classifier decided it. Only
        the dims in ``only`` when given (a lender needs only the dims it lends: liu2025's
        component and phase heads, evidence and blending cost a fifth of its time)."""
        docs = docs if docs is not None else [issue_doc(i) for i in issues]  # split once, shared by all parts
        rs = self.rules.score(issues, docs=docs)  # all dims: the supervised features use every one
        ms = (self.model.score(issues, docs=docs) if self.model is not None and self.model.fitted
              else [None] * len(issues))
        ss = (self.supervised.score(issues, docs=docs, rule_scores=rs, dims=only) if self.supervised is not None
              else [None] * len(issues))
        # another taxonomy's model through a mapping, for dimensions no supervised model of
        # this taxonomy answers (human labels of this taxonomy, when there are, come first)
        lent = [d.score(issues, docs) for d in self.lending_donors()]
        shifted = dict(self._shifted_tops())
        out = []
        for n, (r_dims, m_dims, s_dims) in enumerate(zip(rs, ms, ss, strict=True)):
            dims, kinds = {}, {}
            dom = domain_of(self.domains, issues[n].repo) if shifted else None
            for dim, r in r_dims.items():
                if only is not None and dim not in only:
                    continue
                m = m_dims.get(dim) if m_dims else None
                top = max(r.probs.values(), default=0.0)
                if m is None or (r.strength >= self.rules.sig.strong_score and top >= self.strong_probability):
                    dims[dim], kinds[dim] = r, "rule"
                else:
                    dims[dim], kinds[dim] = blend(r, m, self._rule_weight(r)), "model"
                if s_dims and dim in s_dims:
                    dims[dim], kinds[dim] = overlay(s_dims[dim], dims[dim]), "model"
                for scored in lent:
                    if dim in scored[n] and (weight := self._lent_weight(scored[n][dim][0])) > 0:
                        dims[dim], kinds[dim] = lend(dims[dim], *scored[n][dim], weight=weight), "model"
                        break
                if dom is not None and (ref := shifted.get(self.spec.dims[dim].out_dims[0])):
                    dims[dim] = self._reprior(dim, dims[dim], dom, ref)
            out.append((dims, kinds))
        return out

    def predict(
        self,
        issues: Sequence[Issue],
        *,
        threshold: Threshold | None = None,
        on_llm_error: Callable[[Issue, Exception], None] | None = None,
    ) -> list[Prediction]:
        threshold = self.threshold if threshold is None else threshold
        issues = list(issues)
        preds = []
        for issue, (dims, kinds) in zip(issues, self.score(issues), strict=True):
            if not has_text(issue):  # the models' priors are no evidence: abstain everywhere
                out_dims = self.spec.output_dims
                preds.append(Prediction(repo=issue.repo, number=issue.number, taxonomy=self.spec.name,
                                        labels={d: [] for d in out_dims}, confidence=dict.fromkeys(out_dims, 0.0),
                                        evidence={d: [NO_TEXT] for d in out_dims}, source_kind={}))
                continue
            labels: dict[str, list[str]] = {}
            conf: dict[str, float] = {}
            evidence: dict[str, list[str]] = {}
            source: dict[str, str] = {}
            for dim, sc in dims.items():
                lab, c, ev = decide(self.spec, dim, sc, threshold=threshold)
                labels.update(lab)
                conf.update(c)
                evidence.update(ev)
                source.update({d: kinds[dim] for d in lab})
            preds.append(Prediction(repo=issue.repo, number=issue.number, taxonomy=self.spec.name,
                                    labels=labels, confidence=conf, evidence=evidence,
                                    source_kind=source, scores=dims))
        if self.llm is not None:
            self._ask_llm(issues, preds, threshold, on_llm_error)
        return preds

    def _ask_llm(self, issues, preds, threshold, on_error) -> None:
        for issue, pred in zip(issues, preds, strict=True):
            # a dimension's confidence is that of the level named after it (liu2025 root_cause,
            # yu2026 symptom), else its top level (a user codebook's levels: [area, detail])
            unsure = [d for d, ds in self.spec.dims.items()
                      if pred.confidence.get(d if d in ds.out_dims else next(iter(ds.out_dims), d), 0.0) < self.llm_below]
            if not unsure or not has_text(issue):
                continue
            try:
                answer = self.llm.label(issue)  # type: ignore[attr-defined]
            except Exception as exc:  # the offline labels stand when the endpoint fails
                if on_error is None:
                    raise
                on_error(issue, exc)
                continue
            for dim in unsure:
                sc = answer.get(dim)
                if sc is None:
                    continue
                lab, c, ev = decide(self.spec, dim, sc, threshold=threshold)
                pred.labels.update(lab)
                pred.confidence.update(c)
                pred.evidence.update(ev)
                pred.source_kind.update({d: "llm" for d in lab})
                pred.scores[dim] = sc
