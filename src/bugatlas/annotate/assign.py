"""Balanced assignment of sampled issues to annotators, and study roles.

Each item goes to ``k`` annotators. Items walk through every k-combination of the annotators
in a seeded order, so each annotator gets the same load (±1) and each pair shares about the
same number of items — what pairwise Cohen's kappa needs. A pilot round gives the first
``pilot`` items to every annotator, to calibrate the codebook before the main round.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np

from bugatlas.annotate.sampling import Sample, get_sample, sample_items
from bugatlas.errors import BadInputError
from bugatlas.store import Store
from bugatlas.store.store import now_iso

ROLES = ("annotator", "arbitrator", "owner")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise BadInputError(
            f"annotator name {name!r}: use letters, digits, '.', '_', '-', '@' (at most 64)"
        )
    return name


def roles(store: Store, sample: Sample) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {r: set() for r in ROLES}
    for name, role in store.conn.execute(
        "SELECT name, role FROM ann_roles WHERE sample_id = ?", (sample.id,)
    ):
        out[role].add(name)
    return out


def set_roles(store: Store, sample: Sample | str | None, *, arbitrator: list[str] | None = None,
              owner: list[str] | None = None, annotators: list[str] | None = None) -> dict[str, set[str]]:
    """Add names to roles. Owners and arbitrators see everybody's labels, so nobody may be an
    annotator and also an owner or arbitrator of the same sample (blind labeling)."""
    s = sample if isinstance(sample, Sample) else get_sample(store, sample)
    current = roles(store, s)
    add = {"annotator": annotators or [], "arbitrator": arbitrator or [], "owner": owner or []}
    for role, names in add.items():
        current[role] |= {check_name(n) for n in names}
    clash = current["annotator"] & (current["arbitrator"] | current["owner"])
    if clash:
        raise BadInputError(
            f"{', '.join(sorted(clash))}: an annotator cannot also be arbitrator or owner "
            "(they would see the other annotators' labels)"
        )
    with store.transaction() as conn:
        for role, names in add.items():
            conn.executemany("INSERT OR IGNORE INTO ann_roles VALUES (?, ?, ?)",
                             [(s.id, check_name(n), role) for n in names])
    return current


def assign(store: Store, sample: Sample | str | None, annotators: list[str], *, k: int = 2,
           pilot: int = 0, seed: int | None = None, arbitrator: list[str] | None = None,
           owner: list[str] | None = None) -> dict[str, Any]:
    """Assign every item of the sample to ``k`` of ``annotators``; returns per-annotator and
    per-pair counts. Re-assigning a sample keeps assignments already holding annotations."""
    s = sample if isinstance(sample, Sample) else get_sample(store, sample)
    names = [check_name(a) for a in annotators]
    if len(set(names)) != len(names):
        raise BadInputError(f"--annotators {','.join(annotators)}: a name is repeated")
    if not 1 <= k <= len(names):
        raise BadInputError(f"--k {k}: must be between 1 and the number of annotators ({len(names)})")
    items = sample_items(store, s)
    if pilot < 0 or pilot > len(items):
        raise BadInputError(f"--pilot {pilot}: must be between 0 and the sample size ({len(items)})")
    rng = np.random.default_rng([s.seed if seed is None else seed, 4004])
    combos = list(itertools.combinations(names, k))
    plan: list[tuple[int, str, str]] = []  # (item_id, annotator, round)
    for item in items[:pilot]:
        plan += [(item["id"], a, "pilot") for a in names]
    cycle: list[tuple[str, ...]] = []
    for item in items[pilot:]:
        if not cycle:
            cycle = [combos[i] for i in rng.permutation(len(combos))]
        plan += [(item["id"], a, "main") for a in cycle.pop()]
    params = {"sample": s.name, "annotators": names, "k": k, "pilot": pilot, "seed": seed}
    with store.run("annotate.assign", params) as run, store.transaction() as conn:
        set_roles(store, s, annotators=names, arbitrator=arbitrator, owner=owner)
        kept = {
            r[0] for r in conn.execute(
                "SELECT DISTINCT a.id FROM ann_assignments a JOIN ann_items i ON i.id = a.item_id "
                "JOIN ann_annotations n ON n.assignment_id = a.id WHERE i.sample_id = ?", (s.id,))
        }
        conn.execute(
            f"DELETE FROM ann_assignments WHERE id NOT IN ({','.join(map(str, kept)) or '0'}) "
            "AND item_id IN (SELECT id FROM ann_items WHERE sample_id = ?)", (s.id,))
        # Queue order: pilot first, then the sample's seeded order.
        counters: dict[str, int] = {}
        now = now_iso()
        rows = []
        for item_id, ann, rnd in plan:
            counters[ann] = counters.get(ann, 0) + 1
            rows.append((item_id, ann, rnd, counters[ann], now))
        conn.executemany(
            "INSERT OR IGNORE INTO ann_assignments (item_id, annotator, round, position, created_at) "
            "VALUES (?, ?, ?, ?, ?)", rows)
        summary = assignment_summary(store, s)
        run.summary.update(summary)
    return summary


def assignment_summary(store: Store, sample: Sample) -> dict[str, Any]:
    per_annotator = {
        a: {"pilot": p, "main": m}
        for a, p, m in store.conn.execute(
            "SELECT annotator, SUM(round = 'pilot'), SUM(round = 'main') FROM ann_assignments a "
            "JOIN ann_items i ON i.id = a.item_id WHERE i.sample_id = ? GROUP BY annotator "
            "ORDER BY annotator", (sample.id,))
    }
    pairs = {
        f"{a}+{b}": n
        for a, b, n in store.conn.execute(
            "SELECT x.annotator, y.annotator, COUNT(*) FROM ann_assignments x "
            "JOIN ann_assignments y ON x.item_id = y.item_id AND x.annotator < y.annotator "
            "JOIN ann_items i ON i.id = x.item_id WHERE i.sample_id = ? AND x.round = 'main' "
            "GROUP BY 1, 2 ORDER BY 1, 2", (sample.id,))
    }
    return {"sample": sample.name, "items": len(sample_items(store, sample)),
            "annotators": per_annotator, "pairs": pairs}
