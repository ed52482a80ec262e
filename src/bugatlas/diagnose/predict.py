"""Symptom and root cause from a log alone, with the codebook's signals as the evidence.

Each category of a codebook dimension scores one point per distinct signal (a regex in the
codebook) that matches a line of the log, plus the prior weight ``priors.yaml`` gives the parsed
failure family. The best category wins when it reaches ``min_score``; its confidence is its share
of the score mass (a ranking heuristic, not a calibrated probability). The lines that matched are
returned as evidence. Nothing matched means no prediction: the log is never given a made-up cause.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from bugatlas.diagnose.parse import ParsedLog, log_line
from bugatlas.files import load_yaml

DIMENSIONS = ("symptom", "root_cause")


@lru_cache(maxsize=1)
def load_priors() -> dict[str, Any]:
    text = (resources.files("bugatlas.diagnose") / "priors.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


@dataclass
class Evidence:
    line_no: int | None
    text: str
    why: str


@dataclass
class Prediction:
    dimension: str
    category: str | None                 # leaf name, None = no known pattern
    path: list[str] = field(default_factory=list)   # root -> leaf names
    confidence: float = 0.0
    score: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=8)
def get_codebook(name: str) -> Any:
    """A codebook by name or path, resolved once per process (resolving a name reads every
    codebook file, which would cost more than a whole diagnosis)."""
    from bugatlas.taxonomy import load_codebook

    return load_codebook(name)


def _line_index(text: str) -> tuple[list[int], list[str]]:
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    return starts, lines


def _starts_a_word(text: str, i: int) -> bool:
    """A signal counts where a word starts, or a CamelCase part (``OutOfMemoryError``), never from
    inside a word: liu2025's `race` is not in "Traceback" nor "stacktrace", yu2026's `RAM` not in
    "param", `hang` not in "change"."""
    return i == 0 or not (text[i - 1].isalpha() and text[i].islower())


def predict(parsed: ParsedLog, text: str, codebook: Any, *, dimensions=DIMENSIONS) -> dict[str, Prediction]:
    """Predict each of ``dimensions`` the codebook has. ``codebook`` is a Codebook or its name."""
    cb = get_codebook(codebook) if isinstance(codebook, str) else codebook
    priors = load_priors()
    if parsed.code_lines:  # source lines under traceback frames are code, not what happened
        blank = set(parsed.code_lines)
        text = "\n".join("" if i in blank else line for i, line in enumerate(text.split("\n")))
    starts, lines = _line_index(text)
    out: dict[str, Prediction] = {}
    for dim_name in dimensions:
        if dim_name not in cb.dimensions:
            continue
        dim = cb.dimension(dim_name)
        prior = {}
        if parsed.recognized:
            for src in (priors["kinds"].get(parsed.kind or "", {}), priors["families"].get(parsed.family or "", {})):
                for name, w in (src.get(dim_name) or {}).items():
                    prior[name] = prior.get(name, 0.0) + float(w)
        scored: list[tuple[float, Any, list[Evidence]]] = []
        leaves = {c.id for c in dim.leaves()}
        fam_ev = Evidence(parsed.line_no + 1 if parsed.line_no is not None else None,
                          (parsed.line or "")[:300], f"failure family {parsed.family} ({parsed.kind})")
        prior_cats = [(dim.find(name), w) for name, w in prior.items()]
        prior_cats = [(c, w) for c, w in prior_cats if c is not None]
        for cat in dim.categories.values():
            ev: list[Evidence] = []
            for signal, rx in zip(cat.signals, cat.patterns, strict=True):
                m = next((m for m in rx.finditer(text) if _starts_a_word(text, m.start())), None)
                if m:
                    ln = bisect.bisect_right(starts, m.start()) - 1
                    ev.append(Evidence(ln + 1, lines[ln].strip()[:300], f"signal /{signal}/"))
            score = float(len(ev))
            for pc, w in prior_cats:
                # On the leaf itself; a group's weight only on leaves with evidence of their own.
                if pc is cat or (pc.id not in leaves and ev and pc in dim.path(cat.id)):
                    score += w
                    if fam_ev not in ev:
                        ev.append(fam_ev)
            if score > 0:
                scored.append((score, cat, ev))
        # Predictions are leaves; their groups follow from the codebook's hierarchy.
        leaf_scored = [s for s in scored if s[1].id in leaves]
        leaf_scored.sort(key=lambda s: (-s[0], -(s[1].dataset_count or 0)))
        pred = Prediction(dim_name, None)
        floor = float(priors["min_score"] if parsed.recognized else priors["min_score_unrecognized"])
        if leaf_scored and leaf_scored[0][0] >= floor:
            best_score, best, ev = leaf_scored[0]
            total = sum(s[0] for s in leaf_scored)
            second = leaf_scored[1][0] if len(leaf_scored) > 1 else 0.0
            pred.category = best.name
            pred.path = [c.name for c in dim.path(best.id)]
            pred.score = best_score
            # Share of the evidence mass, shrunk when the runner-up is close or evidence is thin.
            pred.confidence = round(min(0.95, (best_score / total) * (best_score / (best_score + 1.0))
                                        * (1.0 if best_score > second else 0.8)), 3)
            pred.evidence = ev[:8]
            pred.alternatives = [
                {"category": c.name, "score": s, "path": [x.name for x in dim.path(c.id)]}
                for s, c, _ in leaf_scored[1:4]
            ]
            steps = []
            for c in reversed(dim.path(best.id)):  # the leaf's own steps first, then its group's
                steps += [s for s in c.next_steps if s not in steps]
            pred.next_steps = steps
        out[dim_name] = pred
    return out


def number_as_in_log(parsed: ParsedLog, preds: dict[str, Prediction], head_lines: int, skipped: int) -> None:
    """Renumber the lines of a parse and its predictions made on a clipped log
    (:func:`~bugatlas.diagnose.parse.clip_log`) as lines of the whole log."""
    if not skipped:
        return
    if parsed.line_no is not None:
        parsed.line_no = log_line(parsed.line_no, head_lines, skipped)
    for item in [*parsed.chain, *parsed.matches]:
        item.line_no = log_line(item.line_no, head_lines, skipped)
    seen: set[int] = set()
    for pred in preds.values():
        for ev in pred.evidence:  # one Evidence may be shared by several categories
            if ev.line_no is not None and id(ev) not in seen:
                seen.add(id(ev))
                ev.line_no = log_line(ev.line_no - 1, head_lines, skipped) + 1
