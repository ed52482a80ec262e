"""Signature rules: the codebook's ``signals`` plus the weighted, zoned cues of
``signatures/<taxonomy>.yaml`` (tracebacks, ``CUDA out of memory``, ``undefined symbol``,
NCCL errors, GGML asserts, version-mismatch phrases ...). Evidence is the matched text.

Scores become probabilities by a prior-weighted softmax, so one strong cue in the title
outweighs the base rate but a lone weak cue does not.

Speed: Python's ``re`` tries every branch of an alternation at every position, which made
the ~120 cues cost tens of milliseconds per issue. All cues of a zone are matched in one
pass by an RE2 set (a DFA, linear in the text); only the cues that matched are searched
again, for their evidence. A cue RE2 cannot compile (look-arounds, back-references) falls
back to ``re``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import re2

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    DimScores,
    LabelSet,
    Prediction,
    Threshold,
    normalize,
    predictions_from_scores,
)
from bugatlas.classify.schema import TaxonomySpec, package_files_apply, taxonomy_spec
from bugatlas.classify.text import Doc, issue_doc
from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml
from bugatlas.store.records import Issue

ZONES = ("title", "prefix", "prose", "log", "body", "any")
# The texts actually scanned, each once: a zone is a union of them.
PARTS = ("title", "prefix", "body_prose", "log")
ZONE_PARTS = {"title": ("title",), "prefix": ("prefix",), "prose": ("title", "body_prose"),
              "log": ("log",), "body": ("body_prose", "log"), "any": ("title", "body_prose", "log")}
_REGEX_META = re.compile(r"[\\^$.|?*+()\[\]{}]")


@dataclass(frozen=True)
class Cue:
    category: str       # any category of the dimension (a leaf or a group)
    level: str | None   # unused: kept None (the category's place comes from the codebook)
    zone: str
    weight: float
    pattern: re.Pattern[str]
    origin: str  # "codebook" | "signatures"


def _lower_pattern(p: str) -> str:
    """Lower-case a regex's literal characters, leaving escapes (\\S, \\W, \\D ...) alone."""
    out, i = [], 0
    while i < len(p):
        if p[i] == "\\":
            out.append(p[i : i + 2])
            i += 2
        else:
            out.append(p[i].lower())
            i += 1
    return "".join(out)


class _ZoneMatcher:
    """The cues of one zone in RE2 sets of ``SET_SIZE`` patterns; ``matches(text)`` -> [(cue
    index, match)]. One set of all ~200 cues matches fastest once warm, but RE2 builds its DFA
    lazily and a DFA of 200 alternatives has so many states that the first pass over 3,000
    issues took 2.9 s of the rules' 4.3 s (the next passes 0.04 s). Sets of 16: 0.7 s first pass,
    0.18 s warm: a batch run, whose worker processes each start cold, gains about 2 s."""

    SET_SIZE = 16

    def __init__(self, cues: list[tuple[int, Cue]]):
        self.fast: list[tuple[int, Cue, Any]] = []
        self.slow: list[tuple[int, Cue]] = []
        patterns: list[str] = []
        for idx, cue in cues:
            pat = "(?m)" + _lower_pattern(cue.pattern.pattern)
            try:
                single = re2.compile(pat)
            except re2.error:
                self.slow.append((idx, cue))
                continue
            self.fast.append((idx, cue, single))
            patterns.append(pat)
        self.sets: list[tuple[int, Any]] = []  # (index of its first pattern in fast, set)
        for start in range(0, len(patterns), self.SET_SIZE):
            opts = re2.Options()
            opts.max_mem = 64 << 20  # room for the DFA, or RE2 falls back to its slow NFA
            group = re2.Set.SearchSet(opts)
            for pat in patterns[start : start + self.SET_SIZE]:
                group.Add(pat)
            group.Compile()
            self.sets.append((start, group))

    def matches(self, text: str, lowered: str, skip: set[int] = frozenset()
                ) -> list[tuple[int, Cue, tuple[int, int]]]:
        out = []
        hits = sorted(start + k for start, group in self.sets for k in (group.Match(lowered) or ()))
        for k in hits:  # in the cue order of the signature file, whatever order the sets answer in
            idx, cue, single = self.fast[k]
            if idx in skip:
                continue
            m = single.search(lowered)
            if m is not None:
                out.append((idx, cue, m.span()))
        for idx, cue in self.slow:
            if idx in skip:
                continue
            m = cue.pattern.search(text)
            if m is not None:
                out.append((idx, cue, m.span()))
        return out


@dataclass(frozen=True)
class Signatures:
    taxonomy: str
    codebook_weight: float
    strong_score: float
    beta: float
    prior_power: float
    priors: dict[str, dict[str, float]]
    max_labels: dict[str, int]
    prior_powers: dict[str, float]
    cues: dict[str, list[Cue]]  # base dim -> cues
    digest: str


def _compile(text: str, where: str) -> re.Pattern[str]:
    try:
        if not _REGEX_META.search(text):  # a plain phrase: match it as whole words
            return re.compile(r"\b" + re.escape(text) + r"\b", re.I)
        return re.compile(text, re.I | re.M)
    except re.error as exc:
        raise BadInputError(f"{where}: invalid regex {text!r} ({exc})") from None


def signatures_path(taxonomy: str) -> Path | None:
    res = resources.files("bugatlas.classify") / "signatures" / f"{taxonomy}.yaml"
    return Path(str(res)) if res.is_file() else None


def load_signatures(taxonomy: str, path: str | None = None) -> Signatures:
    """Cues for ``taxonomy``: the codebook's signals, plus the package's (or ``path``'s)
    weighted signature file when there is one. Unknown category names are an error."""
    spec = taxonomy_spec(taxonomy)
    # cached per spec, not per name: a name's codebook file can be replaced or edited in-process
    return _signatures_of(spec, path)


_SIGNATURES: dict[tuple[int, str | None], tuple[TaxonomySpec, Signatures]] = {}


def _signatures_of(spec: TaxonomySpec, path: str | None) -> Signatures:
    key = (id(spec), path)  # the spec is kept in the value, so its id cannot be reused meanwhile
    if key not in _SIGNATURES:
        _SIGNATURES[key] = (spec, _build_signatures(spec, path))
    return _SIGNATURES[key][1]


def _build_signatures(spec: TaxonomySpec, path: str | None) -> Signatures:
    # path "none": the codebook's signals alone (the naive keyword baseline)
    file = (None if path == "none" else Path(path) if path
            else signatures_path(spec.name) if package_files_apply(spec) else None)
    data: dict[str, Any] = {}
    raw = b""
    if file is not None:
        raw = file.read_bytes()
        data = load_yaml(raw) or {}
    cb_weight = float(data.get("codebook_signal_weight", 1.0))
    cb_zone = str(data.get("codebook_signal_zone", "any"))
    if cb_zone not in ZONES:
        raise BadInputError(f"{file}: codebook_signal_zone {cb_zone!r} not in {ZONES}")
    cues: dict[str, list[Cue]] = {d: [] for d in spec.dims}
    priors: dict[str, dict[str, float]] = {}
    max_labels: dict[str, int] = {}
    prior_powers: dict[str, float] = {}
    for dim, dspec in spec.dims.items():
        for name, signals in dspec.signals.items():
            for sig in signals:
                cues[dim].append(Cue(name, None, cb_zone, cb_weight,
                                     _compile(sig, f"codebook {spec.name}: {dim}/{name}"), "codebook"))
    for dim, block in (data.get("dimensions") or {}).items():
        where = f"{file}: dimensions.{dim}"
        if dim not in spec.dims:
            raise BadInputError(f"{where}: the codebook {spec.name!r} has no dimension {dim!r}")
        dspec = spec.dims[dim]
        known = set(dspec.placed)
        prior = {k: float(v) for k, v in (block.get("prior") or {}).items()}
        for name in prior:
            if name not in dspec.leaves:
                raise BadInputError(f"{where}.prior: {name!r} is not a leaf of {dim!r}")
        priors[dim] = prior
        if "prior_power" in block:
            prior_powers[dim] = float(block["prior_power"])
        if "max_labels" in block:
            max_labels[dim] = int(block["max_labels"])
        for name, items in (block.get("categories") or {}).items():
            if name not in known:
                raise BadInputError(f"{where}.categories: unknown category {name!r}")
            for i, item in enumerate(items or []):
                zone = item.get("in", "any")
                if zone not in ZONES:
                    raise BadInputError(f"{where}.categories.{name}[{i}]: zone {zone!r} not in {ZONES}")
                cues[dim].append(Cue(name, None, zone, float(item.get("w", 1.0)),
                                     _compile(str(item["re"]), f"{where}.categories.{name}[{i}]"),
                                     "signatures"))
    digest = hashlib.sha256(raw + repr(sorted((d, c.category, c.pattern.pattern) for d, cs in cues.items()
                                              for c in cs)).encode()).hexdigest()[:12]
    return Signatures(taxonomy=spec.name, codebook_weight=cb_weight,
                      strong_score=float(data.get("strong_score", 3.0)),
                      beta=float(data.get("beta", 1.2)),
                      prior_power=float(data.get("prior_power", 1.0)), priors=priors, max_labels=max_labels,
                      prior_powers=prior_powers, cues=cues, digest=digest)


def _snippet(text: str, span: tuple[int, int], zone: str, width: int = 70) -> str:
    a, b = span
    start = text.rfind("\n", 0, a) + 1
    end = text.find("\n", b)
    end = len(text) if end < 0 else end
    start, end = max(start, a - width), min(end, b + width)
    line = " ".join(text[start:end].split())
    return f"{zone}: {line}"[:200]


class RuleClassifier:
    """Signature rules for one codebook. ``fit`` learns nothing (the rules are data); it
    exists so every classifier has the same shape."""

    source_kind = "rule"

    def __init__(self, taxonomy: str, *, signatures: str | None = None):
        self.spec: TaxonomySpec = taxonomy_spec(taxonomy)
        self.sig = load_signatures(taxonomy, signatures)
        self.name = f"rules:{self.spec.name}"
        flat = [(dim, cue) for dim, cues in self.sig.cues.items() for cue in cues]
        self._dims = [dim for dim, _ in flat]
        self._priors = {
            dim: normalize({leaf: self.sig.priors.get(dim, {}).get(leaf, 1.0)
                            ** self.sig.prior_powers.get(dim, self.sig.prior_power)
                            for leaf in dspec.leaves})
            for dim, dspec in self.spec.dims.items()}
        # out dims whose values are not the leaves themselves: value -> leaves under it
        self._levels = {
            dim: {d: {v: dspec.leaves_under(d, v) for v in dspec.values(d)}
                  for d in dspec.out_dims if d not in dspec.leaf_dims}
            for dim, dspec in self.spec.dims.items()}
        # a leaf's own value and its ancestors', each once
        self._leaf_values = {dim: [(leaf, tuple(set(dspec.store[leaf].values()))) for leaf in dspec.leaves]
                             for dim, dspec in self.spec.dims.items()}
        self._no_cue: dict[str, DimScores] = {}
        self._matchers = {p: _ZoneMatcher([(i, c) for i, (_, c) in enumerate(flat) if p in ZONE_PARTS[c.zone]])
                          for p in PARTS}

    @property
    def version(self) -> str:
        return f"rules-{self.sig.digest}"

    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> RuleClassifier:
        return self

    def raw_scores(self, doc: Doc) -> dict[str, tuple[dict[str, float], dict[str, list[str]]]]:
        """Per base dim: (category -> summed weight, category -> evidence)."""
        out: dict[str, tuple[dict[str, float], dict[str, list[str]]]] = {
            dim: ({}, {}) for dim in self.sig.cues}
        seen: set[int] = set()  # a cue counts once, in the first part it matches
        texts = {"title": doc.title, "prefix": doc.prefix, "body_prose": doc.prose, "log": doc.log}
        for part, matcher in self._matchers.items():
            text = texts[part]
            if not text or not (matcher.fast or matcher.slow):
                continue
            for idx, cue, span in matcher.matches(text, text.lower(), skip=seen):
                seen.add(idx)
                scores, evidence = out[self._dims[idx]]
                scores[cue.category] = scores.get(cue.category, 0.0) + cue.weight
                where = "prose" if part == "body_prose" else part
                evidence.setdefault(cue.category, []).append(_snippet(text, span, where))
        return out

    def score_doc(self, doc: Doc) -> dict[str, DimScores]:
        result = {}
        for dim, (own, evidence) in self.raw_scores(doc).items():
            if own:
                result[dim] = self._dim_scores(dim, own, evidence)
                continue
            # no cue of this dim matched (most dims of most issues): the priors, computed once
            base = self._no_cue.get(dim)
            if base is None:
                base = self._no_cue[dim] = self._dim_scores(dim, {}, {})
            result[dim] = DimScores(probs=dict(base.probs), evidence={}, strength=base.strength,
                                    level_probs={k: dict(v) for k, v in base.level_probs.items()})
        return result

    def _dim_scores(self, dim: str, own: dict[str, float], evidence: dict[str, list[str]]) -> DimScores:
        prior = self._priors[dim]
        # a leaf's score: its own cues plus its ancestors' (an "Unexpected Output" cue
        # lifts every sub-type)
        leaf_scores = {leaf: sum(own.get(v, 0.0) for v in values)
                       for leaf, values in self._leaf_values[dim]}
        beta = self.sig.beta
        probs = normalize({leaf: prior[leaf] * math.exp(beta * min(s, 12.0))
                           for leaf, s in leaf_scores.items()})
        level_probs: dict[str, dict[str, float]] = {}
        for out_dim, members in self._levels[dim].items():
            # a value's evidence: its own cues plus its best leaf's (not the sum: many weak
            # leaf cues in one group must not outvote one strong cue elsewhere)
            scores = {v: (0.0 if v in prior else own.get(v, 0.0))
                      + max(own.get(leaf, 0.0) for leaf in leaves) for v, leaves in members.items()}
            level_probs[out_dim] = normalize({
                v: sum(prior[leaf] for leaf in members[v]) * math.exp(beta * min(sc, 12.0))
                for v, sc in scores.items()})
        strength = max(leaf_scores.values(), default=0.0)
        return DimScores(probs=probs, evidence=evidence, strength=strength, level_probs=level_probs)

    def score(self, issues: Sequence[Issue], docs: Sequence[Doc] | None = None) -> list[dict[str, DimScores]]:
        docs = docs if docs is not None else [issue_doc(i) for i in issues]
        return [self.score_doc(d) for d in docs]

    def predict(self, issues: Sequence[Issue], *, threshold: Threshold = DEFAULT_THRESHOLD) -> list[Prediction]:
        return predictions_from_scores(self.spec, issues, self.score(issues), self.source_kind,
                                       threshold=threshold)
