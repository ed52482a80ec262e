"""Stratified random samples sized by Cochran's formula, recorded in the store.

Per stratum of N issues, n0 = z² p(1-p) / e² (p = 0.5, the most conservative proportion) and
the finite population correction n = n0 / (1 + (n0 - 1) / N), rounded up — the protocol Liu
et al. used per engine (95% confidence, 5% margin). ``size=`` instead fixes the total and
allocates it proportionally (largest remainder), for pilots and small studies.
Draws are reproducible: the population is ordered by (repo, number) and shuffled per stratum
by a generator seeded with (seed, stratum name).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from scipy.stats import norm

from bugatlas.annotate import codebook as cbm
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store import Store
from bugatlas.store.store import ISSUE_COLUMNS, now_iso

STRATA_SPECIAL = {"year": "substr(created_at, 1, 4)", "none": "'all'"}


def cochran_size(population: int, confidence: float = 0.95, margin: float = 0.05,
                 proportion: float = 0.5) -> int:
    """Sample size for estimating a proportion in a population of ``population`` items."""
    if population <= 0:
        return 0
    if not 0 < confidence < 1:
        raise BadInputError(f"--confidence must be between 0 and 1, got {confidence}")
    if not 0 < margin < 1:
        raise BadInputError(f"--margin must be between 0 and 1, got {margin}")
    z = norm.ppf(1 - (1 - confidence) / 2)
    n0 = z * z * proportion * (1 - proportion) / (margin * margin)
    n = n0 / (1 + (n0 - 1) / population)
    return min(population, math.ceil(n - 1e-9))


@dataclass
class Sample:
    id: int
    name: str
    taxonomy: str
    dimensions: list[str]
    strata_by: str
    seed: int
    confidence: float | None
    margin: float | None
    settings: dict[str, Any]
    params: dict[str, Any]
    strata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(s["size"] for s in self.strata)


def _stratum_expr(per: str) -> str:
    if per in STRATA_SPECIAL:
        return STRATA_SPECIAL[per]
    if per not in ISSUE_COLUMNS or per in {"title", "body", "raw", "labels", "reactions"}:
        allowed = ["repo", "year", "none"] + [
            c for c in ISSUE_COLUMNS if c not in {"title", "body", "raw", "labels", "reactions", "repo"}
        ]
        raise BadInputError(f"--per {per}: not a column to stratify by (one of {', '.join(allowed)})")
    return per


def _population(store: Store, per: str, repos: list[str] | None, label: str | None,
                failure_reports: bool = False) -> dict[str, list[tuple[str, int]]]:
    expr = _stratum_expr(per)
    where = ["is_reference = 0", "is_pull_request = 0"]
    args: list[Any] = []
    if failure_reports:
        # The filter stage's verdict (its `failure_reports` view): sample bug reports only, as
        # the published studies did, not feature requests and questions.
        has_view = store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'failure_reports'").fetchone()
        judged = has_view and store.conn.execute("SELECT 1 FROM failure_reports LIMIT 1").fetchone()
        if not judged:
            raise BadInputError("--failure-reports: no issue is judged a failure report in this "
                                "store yet (run `bugatlas filter` first)")
        where.append("EXISTS (SELECT 1 FROM failure_reports f WHERE f.repo = issues.repo "
                     "AND f.number = issues.number)")
    if repos:
        where.append(f"repo IN ({', '.join('?' * len(repos))})")
        args += [r.lower() for r in repos]
    if label:
        # TAXONOMY:DIMENSION=VALUE — e.g. the filter stage's "failure report" label.
        try:
            tax, rest = label.split(":", 1)
            dim, value = rest.split("=", 1)
        except ValueError:
            raise BadInputError(f"--label {label}: expected TAXONOMY:DIMENSION=VALUE") from None
        where.append(
            "EXISTS (SELECT 1 FROM labels l WHERE l.repo = issues.repo AND "
            "l.issue_number = issues.number AND l.taxonomy = ? AND l.dimension = ? AND l.value = ?)"
        )
        args += [tax, dim, value]
    sql = (f"SELECT COALESCE(CAST({expr} AS TEXT), '(none)'), repo, number FROM issues "
           f"WHERE {' AND '.join(where)} ORDER BY repo, number")
    strata: dict[str, list[tuple[str, int]]] = {}
    for stratum, repo, number in store.conn.execute(sql, args):
        strata.setdefault(stratum, []).append((repo, number))
    return strata


def _allocate(total: int, populations: dict[str, int]) -> dict[str, int]:
    """Proportional allocation by largest remainder (ties broken by stratum name)."""
    grand = sum(populations.values())
    total = min(total, grand)
    quotas = {s: total * n / grand for s, n in populations.items()}
    alloc = {s: math.floor(q) for s, q in quotas.items()}
    rest = total - sum(alloc.values())
    for s in sorted(quotas, key=lambda s: (-(quotas[s] - alloc[s]), s))[:rest]:
        alloc[s] += 1
    return alloc


def _rng(seed: int, stratum: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(stratum.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def draw_sample(
    store: Store,
    taxonomy: Any,
    *,
    name: str | None = None,
    per: str = "repo",
    confidence: float = 0.95,
    margin: float = 0.05,
    size: int | None = None,
    seed: int = 0,
    repos: list[str] | None = None,
    label: str | None = None,
    dimensions: list[str] | None = None,
    replace: bool = False,
    failure_reports: bool = False,
) -> Sample:
    """Draw and record a stratified sample of the store's issues for ``taxonomy``."""
    cb = cbm.load(taxonomy)
    dims = dimensions or cbm.dimension_names(cb)
    for d in dims:
        cbm.dimension(cb, d)
    name = name or cb.name
    strata = _population(store, per, repos, label, failure_reports)
    if not strata:
        narrowed = [opt for opt, given in (("--repos " + ",".join(repos or []), repos),
                                           (f"--label {label}", label),
                                           ("--failure-reports", failure_reports)) if given]
        if narrowed and _population(store, per, None, None):
            raise BadInputError(f"no issue matches {' '.join(narrowed)} (nothing to sample)")
        raise BugAtlasError("no issues to sample (import or collect issues with text first)")
    pops = {s: len(v) for s, v in strata.items()}
    if size is not None:
        if size <= 0:
            raise BadInputError(f"--size must be positive, got {size}")
        sizes = _allocate(size, pops)
    else:
        sizes = {s: cochran_size(n, confidence, margin) for s, n in pops.items()}
    params = {"taxonomy": cb.name, "per": per, "confidence": confidence, "margin": margin,
              "size": size, "seed": seed, "repos": repos, "label": label, "dimensions": dims,
              "failure_reports": failure_reports}
    if cbm.file_of(taxonomy):  # a user's codebook: later commands load it by the sample
        params["codebook_file"] = cbm.file_of(taxonomy)
    with store.run("annotate.sample", params) as run, store.transaction() as conn:
        existing = conn.execute("SELECT id FROM ann_samples WHERE name = ?", (name,)).fetchone()
        if existing:
            if not replace:
                raise BadInputError(f"sample {name!r} exists (choose --name, or --replace it)")
            work = conn.execute(
                "SELECT COUNT(*) FROM ann_annotations n JOIN ann_assignments a ON a.id = n.assignment_id "
                "JOIN ann_items i ON i.id = a.item_id WHERE i.sample_id = ?", (existing[0],)).fetchone()[0]
            if work:  # replacing deletes the sample's items, assignments, annotations and finals
                raise BadInputError(f"--replace: sample {name!r} holds {work} saved annotation(s); "
                                    "replacing it would delete them (choose another --name)")
            conn.execute("DELETE FROM ann_samples WHERE id = ?", (existing[0],))
        cur = conn.execute(
            "INSERT INTO ann_samples (name, taxonomy, dimensions, strata_by, confidence, margin, "
            "seed, params, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, cb.name, orjson.dumps(dims).decode(), per,
             None if size else confidence, None if size else margin, seed,
             orjson.dumps(params).decode(), run.id, now_iso()),
        )
        sample_id = int(cur.lastrowid)
        rows = []
        for stratum in sorted(strata):
            members = strata[stratum]
            n = sizes[stratum]
            picked = _rng(seed, stratum).permutation(len(members))[:n]
            conn.execute("INSERT INTO ann_strata VALUES (?, ?, ?, ?)",
                         (sample_id, stratum, len(members), n))
            rows += [(stratum, members[i]) for i in picked]
        # Interleave strata in a seeded order, so a partial pass covers every stratum.
        order = _rng(seed, "\0order").permutation(len(rows))
        conn.executemany(
            "INSERT INTO ann_items (sample_id, repo, issue_number, stratum, position) "
            "VALUES (?, ?, ?, ?, ?)",
            [(sample_id, rows[i][1][0], rows[i][1][1], rows[i][0], pos)
             for pos, i in enumerate(order)],
        )
        run.summary.update({"sample": name, "items": len(rows)})
    return get_sample(store, name)


def get_sample(store: Store, name: str | None = None) -> Sample:
    """A recorded sample by name (default: the most recent one)."""
    if name:
        row = store.conn.execute("SELECT * FROM ann_samples WHERE name = ?", (name,)).fetchone()
    else:
        row = store.conn.execute("SELECT * FROM ann_samples ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        known = [r[0] for r in store.conn.execute("SELECT name FROM ann_samples ORDER BY id")]
        if name:
            raise BadInputError(f"--sample {name}: no such sample (have: {', '.join(known) or 'none'})")
        raise BugAtlasError("no sample in this store yet (run `bugatlas sample --taxonomy NAME`)")
    cols = [d[0] for d in store.conn.execute("SELECT * FROM ann_samples LIMIT 0").description]
    d = dict(zip(cols, row, strict=True))
    strata = [
        {"stratum": s, "population": p, "size": n}
        for s, p, n in store.conn.execute(
            "SELECT stratum, population, size FROM ann_strata WHERE sample_id = ? ORDER BY stratum",
            (d["id"],),
        )
    ]
    return Sample(
        id=d["id"], name=d["name"], taxonomy=d["taxonomy"],
        dimensions=orjson.loads(d["dimensions"]), strata_by=d["strata_by"], seed=d["seed"],
        confidence=d["confidence"], margin=d["margin"], settings=orjson.loads(d["settings"]),
        params=orjson.loads(d["params"]), strata=strata,
    )  # fmt: skip


def update_settings(store: Store, sample: Sample, **changes: Any) -> Sample:
    with store.transaction() as conn:
        row = conn.execute("SELECT settings FROM ann_samples WHERE id = ?", (sample.id,)).fetchone()
        settings = {**orjson.loads(row[0]), **changes}
        conn.execute("UPDATE ann_samples SET settings = ? WHERE id = ?",
                     (orjson.dumps(settings).decode(), sample.id))
    sample.settings = settings
    return sample


def sample_items(store: Store, sample: Sample) -> list[dict[str, Any]]:
    return store.query(
        "SELECT id, repo, issue_number, stratum, position FROM ann_items WHERE sample_id = ? "
        "ORDER BY position", (sample.id,),
    )
