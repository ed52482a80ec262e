"""Where an issue comes from changes what its failure most likely is: of the failures users
reported in model-release repositories (DeepSeek, Llama, Qwen), Yu et al. found 25% were user
configuration faults and 21% happened in fine-tuning; in the engine issues BugAtlas's models
learned from, 7% and under 1%. A model fitted on one kind of repository carries that
repository's base rates into its probabilities.

A codebook's ``domains:`` (data) name repositories by glob and the category shares a study
measured there. For an issue of such a repository, a top level's probabilities are moved from
the base rates the model learned to the domain's (Saerens, Latinne & Decaestecker 2002: the
posterior times target share over training share, renormalized); the evidence says so. The
levels below are chosen inside the top value, as always.

    domains:
      - name: model-release repositories
        repos: ["deepseek-ai/deepseek-*", "meta-llama/llama[0-9]*", "qwenlm/qwen[0-9]*"]
        priors: published_count      # every top level's published counts, or per top level:
        # priors: {stage: published_count, root_cause_category: {Data and Input Fault: 83, ...}}
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from bugatlas.classify.base import normalize
from bugatlas.errors import BadInputError

# a share below this is read as this: a class the model (almost) never saw would otherwise be
# multiplied without bound, and one the study never saw in a domain is rare there, not impossible
MIN_SHARE = 0.002


@dataclass(frozen=True)
class Domain:
    name: str
    repos: tuple[str, ...]                              # owner/name globs, matched case-insensitively
    priors: dict[str, dict[str, float]]                 # top-level out dim -> value -> share
    source: str = ""

    def matches(self, repo: str) -> bool:
        repo = (repo or "").lower()
        return any(fnmatch.fnmatchcase(repo, g) for g in self.repos)

    @property
    def digest(self) -> str:
        table = repr((self.repos, sorted((d, sorted(v.items())) for d, v in self.priors.items())))
        return hashlib.sha256(table.encode()).hexdigest()[:8]


def shift(probs: dict[str, float], reference: dict[str, float], target: dict[str, float]) -> dict[str, float]:
    """``probs`` learned under the base rates ``reference``, moved to the base rates ``target``."""
    return normalize({v: p * max(target.get(v, 0.0), MIN_SHARE) / max(reference.get(v, 0.0), MIN_SHARE)
                      for v, p in probs.items()})


def domain_of(domains: list[Domain], repo: str) -> Domain | None:
    return next((d for d in domains if d.matches(repo)), None)


def domains_of(spec: Any) -> list[Domain]:
    """The codebook's ``domains:``, checked; [] when it has none."""
    cb = spec.codebook
    raw = (cb.extra or {}).get("domains") if cb is not None else None
    return list(_parse(cb.source or spec.name, raw, _tops(spec))) if raw else []


def published_shares(spec: Any) -> dict[str, dict[str, float]]:
    """Per top level whose categories all have a ``published_count``: their shares."""
    return _parse(spec.name, [{"name": "published", "repos": ["*/*"], "priors": "published_count"}],
                  _tops(spec))[0].priors


def _tops(spec: Any) -> tuple[tuple[str, tuple[str, ...], tuple[int | None, ...]], ...]:
    """Per dimension: its top-level out dim, that level's values and their published counts."""
    cb = spec.codebook
    out = []
    for dim, dspec in spec.dims.items():
        top = dspec.out_dims[0]
        values = tuple(dspec.values(top))
        roots = {c.name: c.published_count for c in cb.roots(dim)} if cb is not None and dim in cb.dimensions else {}
        out.append((top, values, tuple(roots.get(v) for v in values)))
    return tuple(out)


def _parse(where: str, raw: Any, tops: tuple) -> tuple[Domain, ...]:
    if not isinstance(raw, list):
        raise BadInputError(f"{where}: domains: a list of {{name, repos, priors}}")
    by_top = {top: (values, counts) for top, values, counts in tops}
    out = []
    for i, item in enumerate(raw, 1):
        name = str((item or {}).get("name") or f"#{i}") if isinstance(item, dict) else f"#{i}"
        here = f"{where}: domains: {name}"
        if not isinstance(item, dict):
            raise BadInputError(f"{here}: a mapping with name, repos and priors")
        repos = item.get("repos")
        if not isinstance(repos, list) or not repos or not all(isinstance(r, str) and "/" in r for r in repos):
            raise BadInputError(f"{here}: repos: a list of owner/name globs, e.g. qwenlm/qwen*")
        priors_raw = item.get("priors")
        counts: dict[str, dict[str, float]] = {}
        if priors_raw == "published_count":  # every top level whose categories all have one
            priors_raw = {top: "published_count" for top, (values, published) in by_top.items()
                          if values and all(c is not None for c in published)}
            if not priors_raw:
                raise BadInputError(f"{here}: priors: published_count, but no top level has a "
                                    "published_count on every category")
        if isinstance(priors_raw, dict) and priors_raw:
            for top, shares in priors_raw.items():
                if top not in by_top:
                    raise BadInputError(f"{here}: priors: {top!r} is not a top level of the codebook "
                                        f"(top levels: {', '.join(by_top)})")
                if shares == "published_count":
                    values, published = by_top[top]
                    if not all(c is not None for c in published):
                        raise BadInputError(f"{here}: priors: {top}: published_count, but not every category "
                                            "of that level has one")
                    shares = dict(zip(values, published, strict=True))
                if not isinstance(shares, dict) or not shares:
                    raise BadInputError(f"{here}: priors: {top}: published_count, or a mapping of "
                                        "category -> count or share")
                bad = [k for k in shares if k not in by_top[top][0]]
                if bad:
                    raise BadInputError(f"{here}: priors: {top}: not a category of that level: {bad[0]!r}")
                # finite: an .inf count would make every share nan (0 or nan after normalizing)
                if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                           for v in shares.values()) or sum(shares.values()) <= 0:
                    raise BadInputError(f"{here}: priors: {top}: counts or shares must be finite numbers >= 0, "
                                        "not all 0")
                counts[top] = {v: float(shares.get(v, 0)) for v in by_top[top][0]}
        else:
            raise BadInputError(f"{here}: priors: published_count, or per top level a mapping of "
                                "category -> count")
        priors = {top: normalize(cs) for top, cs in counts.items()}
        out.append(Domain(name=name, repos=tuple(r.lower() for r in repos), priors=priors,
                          source=str(item.get("source") or "").strip()))
    return tuple(out)
