"""Study data: the labels of one taxonomy (from one or more label sources) joined to their
issues, as pandas frames every analysis reads.

The unit of counting is the labelled *record*: an issue for classifier and human labels, a
published record for imported datasets (Open-LLM-Failures holds 706 records for 703 issues,
and its paper counts records). Hierarchical values are expanded into their levels through the
taxonomy's codebook (``bugatlas.taxonomy``) when it knows the dimension, else by splitting
"Category - Subcategory - Leaf" strings as the published datasets write them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bugatlas.errors import BadInputError
from bugatlas.store import Store

LEVEL_SEPARATOR = re.compile(r"\s+-\s+")
GROUP_CHOICES = ("repository", "repo", "owner")


# codebooks given as a YAML path (--taxonomy ./mine.yaml), by the name their labels are stored under
_FROM_FILES: dict[str, Any] = {}


def taxonomy_name(taxonomy: str | None) -> str | None:
    """The stored taxonomy a --taxonomy names: a codebook YAML path stands for its codebook's
    name (classify and gold store labels under it), and analyses then read that file's levels."""
    from bugatlas.taxonomy.loader import is_codebook_path, load_codebook

    if not taxonomy or not is_codebook_path(taxonomy):
        return taxonomy

    cb = load_codebook(taxonomy)  # an unreadable or invalid file: one line naming it
    _FROM_FILES[cb.name] = cb
    return cb.name


def codebook(name: str | None) -> Any | None:
    """The taxonomy's codebook through the shared taxonomy API, or None when the taxonomy
    stage is not installed or does not know this taxonomy (levels then come from the values)."""
    if name in _FROM_FILES:
        return _FROM_FILES[name]
    return _codebook_by_name(name)


@lru_cache(maxsize=32)
def _codebook_by_name(name: str | None) -> Any | None:
    if not name:
        return None
    try:
        from bugatlas.taxonomy import load_codebook
    except ImportError:
        return None
    try:
        return load_codebook(name)
    except Exception:  # unknown taxonomy name: analyse the values as they are
        return None


def _codebook_path(cb: Any, dimension: str, value: str) -> list[str] | None:
    try:
        cat = cb.category(dimension, value)
        path = cb.path(dimension, cat.id)
    except Exception:
        return None
    names = [c.name for c in path] if path else None
    return names or None


def split_levels(value: str) -> list[str]:
    """'Crash - CUDA Error - Out of Memory' -> ['Crash', 'CUDA Error', 'Out of Memory'];
    stray whitespace inside a level is normalised ('Issues -  Architecture')."""
    parts = [" ".join(p.split()) for p in LEVEL_SEPARATOR.split(value.strip())]
    return [p for p in parts if p] or [value]


@dataclass
class StudyData:
    """Labels of one taxonomy joined to their issues.

    ``units``: one row per labelled record (index ``unit``): repo, issue_number, record,
    group (engine / model series), created_at, closed_at, state, comments_count,
    author_association, labels (maintainers' label names), title, html_url, is_reference.
    ``labels``: one row per (unit, dimension, value) at leaf level.
    """

    taxonomy: str | None
    sources: list[str]
    units: pd.DataFrame
    labels: pd.DataFrame
    group_by: str = "repository"
    notes: list[str] = field(default_factory=list)
    _paths: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)
    _dims: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] | None = field(default=None, repr=False)
    _cache: dict[tuple, pd.DataFrame] = field(default_factory=dict, repr=False)

    def _index(self) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
        """Per dimension: unit array, value codes, distinct values — built once, so the
        analyses never iterate over string columns in Python (100,000-issue studies)."""
        if self._dims is None:
            dims: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
            lab = self.labels
            dcodes, dnames = pd.factorize(lab["dimension"], sort=False)
            vcodes, vnames = pd.factorize(lab["value"], sort=False)
            units = lab["unit"].to_numpy()
            vnames = list(vnames)
            for i, d in enumerate(dnames):
                mask = dcodes == i
                codes, uniq = pd.factorize(vcodes[mask], sort=False)
                dims[str(d)] = (units[mask], codes, [vnames[j] for j in uniq])
            self._dims = dims
        return self._dims

    # -- levels ----------------------------------------------------------------------------
    @property
    def dimensions(self) -> list[str]:
        order = list(self._index())
        cb = codebook(self.taxonomy)
        if cb is not None:
            known = [d for d in getattr(cb, "dimensions", {}) if d in order]
            order = known + [d for d in order if d not in known]
        return order

    @property
    def primary_dimensions(self) -> list[str]:
        """Dimensions less those that only repeat a level of another hierarchical dimension
        (a mapped yu2026 study stores symptom_category beside symptom)."""
        dims = self.dimensions
        levels_of_others = set()
        for d in dims:
            names = self.level_names(d)
            levels_of_others.update(n for n in names[:-1] if n != d)
        return [d for d in dims if d not in levels_of_others]

    def path(self, dimension: str, value: str) -> list[str]:
        key = (dimension, value)
        if key not in self._paths:
            cb = codebook(self.taxonomy)
            names = _codebook_path(cb, dimension, value) if cb is not None else None
            self._paths[key] = names or split_levels(value)
        return self._paths[key]

    def distinct_values(self, dimension: str) -> list[str]:
        entry = self._index().get(dimension)
        return list(entry[2]) if entry else []

    def depth(self, dimension: str) -> int:
        return max((len(self.path(dimension, v)) for v in self.distinct_values(dimension)), default=0)

    def level_names(self, dimension: str) -> list[str]:
        depth = self.depth(dimension)
        cb = codebook(self.taxonomy)
        if cb is not None:
            try:
                levels = list(cb.dimension(dimension).levels or [])
            except Exception:
                levels = []
            if len(levels) == depth and len(set(levels)) == depth:
                return levels
        if depth <= 1:
            return [dimension]
        return [f"level {i + 1}" for i in range(depth)]

    def level_index(self, dimension: str, level: int | str | None) -> int:
        """Level as an index from the root (0); None or -1 is the leaf."""
        depth = max(self.depth(dimension), 1)
        if level is None:
            return depth - 1
        if isinstance(level, str):
            if level.lstrip("-").isdigit():
                level = int(level)
            else:
                names = self.level_names(dimension)
                if level not in names:
                    raise BadInputError(
                        f"--level {level!r}: dimension {dimension!r} has levels {', '.join(names)}"
                    )
                return names.index(level)
        if level < 0:
            level = depth + level
        if not 0 <= level < depth:
            raise BadInputError(f"--level {level}: dimension {dimension!r} has {depth} level(s)")
        return level

    def values(self, dimension: str, level: int | str | None = None, *, distinct: bool = True) -> pd.DataFrame:
        """(unit, value) rows of a dimension at a level. distinct=False keeps one row per leaf
        label (instances: a bug with two causes in one group counts twice at group level)."""
        self.require(dimension)
        idx = self.level_index(dimension, level)
        key = (dimension, idx, distinct)
        if key not in self._cache:
            units, codes, names = self._index()[dimension]
            at_level = [self.path(dimension, v)[min(idx, len(self.path(dimension, v)) - 1)] for v in names]
            lcodes, lnames = pd.factorize(np.asarray(at_level, dtype=object), sort=False)
            vcodes = lcodes[codes]
            if distinct:
                pair = units.astype(np.int64) * (len(lnames) + 1) + vcodes
                _, first = np.unique(pair, return_index=True)
                first.sort()
                units, vcodes = units[first], vcodes[first]
            rows = pd.DataFrame({"unit": units, "value": np.asarray(lnames, dtype=object)[vcodes]})
            self._cache[key] = self._with_level_only_labels(dimension, idx, rows)
        return self._cache[key].copy()

    def _with_level_only_labels(self, dimension: str, idx: int, rows: pd.DataFrame) -> pd.DataFrame:
        """Add the labels given only at this level: an annotator may choose a root-cause group
        with no cause, and a classifier may be sure of the group but not of the cause. They
        are stored in the level's own dimension (``root_cause_group``) and have no leaf to be
        counted from, so a group distribution read from the leaves alone missed them."""
        names = self.level_names(dimension)
        level_dim = names[idx] if idx < len(names) - 1 else None
        if not level_dim or level_dim == dimension or level_dim not in self._index():
            return rows
        units, codes, values = self._index()[level_dim]
        own = pd.DataFrame({"unit": units, "value": np.asarray(values, dtype=object)[codes]}).drop_duplicates()
        seen = pd.MultiIndex.from_frame(rows[["unit", "value"]])
        extra = own[~pd.MultiIndex.from_frame(own).isin(seen)]
        if extra.empty:
            return rows
        return pd.concat([rows, extra], ignore_index=True)

    def require(self, dimension: str) -> None:
        if dimension not in self._index():
            have = ", ".join(self.dimensions) or "none"
            raise BadInputError(
                f"dimension {dimension!r}: no labels of taxonomy {self.taxonomy!r} have it (dimensions: {have})"
            )

    def has(self, dimension: str | None) -> bool:
        return bool(dimension) and dimension in self._index()

    def groups(self) -> pd.Series:
        return self.units["group"]

    def grouping(self, by: str | None) -> pd.DataFrame:
        """(unit, group) rows for a grouping: repository (display name), repo, owner, or a
        dimension of the taxonomy (e.g. model, stage; leaf level)."""
        if by in (None, "repository"):
            return pd.DataFrame({"unit": self.units.index, "value": self.units["group"].to_numpy()})
        if by == "repo":
            return pd.DataFrame({"unit": self.units.index, "value": self.units["repo"].to_numpy()})
        if by == "owner":
            return pd.DataFrame({"unit": self.units.index, "value": self.units["repo"].str.split("/").str[0].to_numpy()})
        if self.has(by):
            return self.values(by, None)
        raise BadInputError(
            f"--by {by!r}: use repository, repo, owner or a dimension ({', '.join(self.dimensions)})"
        )


def _sources(store: Store, taxonomy: str) -> list[dict[str, Any]]:
    return [s for s in store.label_sources() if s["taxonomy"] == taxonomy]


def choose_sources(store: Store, taxonomy: str, source: str | list[str] | None = None) -> list[str]:
    """Which label sources to analyse. Given: a source name, a source kind (human, rule,
    model, llm), a list of them, or "all". Default: the single source if there is one, else the
    human source covering the most issues (a study should not mix a classifier's labels with
    the ground truth on the same issues without saying so)."""
    avail = _sources(store, taxonomy)
    if not avail:
        known = sorted({s["taxonomy"] for s in store.label_sources()})
        raise BadInputError(
            f"--taxonomy {taxonomy!r}: no labels in {store.path} (taxonomies with labels: {', '.join(known) or 'none'})"
        )
    if source in (None, ""):
        if len(avail) == 1:
            return [avail[0]["source"]]
        human = [s for s in avail if s["source_kind"] == "human"] or avail
        return [max(human, key=lambda s: s["issues"])["source"]]
    wanted = [source] if isinstance(source, str) else list(source)
    if wanted == ["all"]:
        return sorted({s["source"] for s in avail})
    out: list[str] = []
    for w in wanted:
        hit = [s["source"] for s in avail if w in (s["source"], s["source_kind"])]
        if not hit:
            raise BadInputError(
                f"--source {w!r}: no {taxonomy} labels from it (sources: {', '.join(s['source'] for s in avail)})"
            )
        out += [h for h in hit if h not in out]
    return out


_ISSUE_COLS = ("repo", "number", "title", "state", "labels", "author_association", "created_at",
               "closed_at", "comments_count", "html_url", "is_reference")  # fmt: skip


def _displays(store: Store) -> dict[str, str]:
    return {r["full_name"]: r["display"] or r["full_name"] for r in store.repositories()}


def load_study(
    store: Store,
    taxonomy: str | None,
    *,
    source: str | list[str] | None = None,
    repos: list[str] | None = None,
    restrict: str | None = None,
    attach: dict[str, list[str]] | None = None,
    names: dict[str, str] | None = None,
) -> StudyData:
    """Load a taxonomy's labels and their issues.

    ``restrict``: an SQL query returning (repo, number) rows the study keeps, e.g. the filter
    stage's ``SELECT repo, number FROM failure_reports``. ``attach``: dimensions to borrow
    from another taxonomy for the same records, e.g. ``{"yu2026-artifact": ["model"]}`` for a
    study of labels mapped into yu2026 (the mapping carries symptom, root cause and stage).
    ``names``: repository → group name, overriding the stored display names (e.g. the
    engine names a paper prints). ``taxonomy=None`` loads every issue
    with text and no labels (maintenance analyses of a raw corpus).
    """
    notes: list[str] = []
    conn = store.conn
    taxonomy = taxonomy_name(taxonomy)
    if restrict:
        try:
            cols = conn.execute(f"SELECT * FROM ({restrict}) LIMIT 0").description
        except Exception as exc:  # sqlite3 errors: name the option, not a traceback
            raise BadInputError(f"--only {restrict!r}: the query fails ({exc})") from exc
        if len(cols) != 2:
            raise BadInputError(f"--only {restrict!r}: must return two columns (repo, number), not {len(cols)}")
    where, args = [], []
    if repos:
        where.append(f"l.repo IN ({', '.join('?' * len(repos))})")
        args += [r.lower() for r in repos]
    if restrict:
        where.append(f"(l.repo, l.{'issue_number' if taxonomy else 'number'}) IN ({restrict})")
    if taxonomy:
        sources = choose_sources(store, taxonomy, source)
        sql = (
            "SELECT l.repo, l.issue_number, l.record, l.dimension, l.value FROM labels l "
            f"WHERE l.taxonomy = ? AND l.source IN ({', '.join('?' * len(sources))})"
        )
        for w in where:
            sql += f" AND {w}"
        lab = pd.read_sql_query(sql, conn, params=[taxonomy, *sources, *args])
        if len(sources) > 1:
            # records of different sources on one issue collapse to the issue
            lab["record"] = ""
            notes.append(f"labels merged from {len(sources)} sources: {', '.join(sources)}")
        keys = lab[["repo", "issue_number", "record"]].drop_duplicates().sort_values(
            ["repo", "issue_number", "record"]
        ).reset_index(drop=True)
        keys.index.name = "unit"
        key_index = pd.MultiIndex.from_frame(keys)
        lab_index = pd.MultiIndex.from_frame(lab[["repo", "issue_number", "record"]])
        unit = key_index.get_indexer(lab_index)
        labels = pd.DataFrame({"unit": unit, "dimension": lab["dimension"].to_numpy(),
                               "value": lab["value"].to_numpy()}).drop_duplicates(ignore_index=True)  # fmt: skip
        for other, dims in (attach or {}).items():
            extra = pd.read_sql_query(
                f"SELECT repo, issue_number, record, dimension, value FROM labels WHERE taxonomy = ? "
                f"AND dimension IN ({', '.join('?' * len(dims))})", conn, params=[other, *dims])  # fmt: skip
            if len(sources) > 1:
                extra["record"] = ""
            pos = key_index.get_indexer(pd.MultiIndex.from_frame(extra[["repo", "issue_number", "record"]]))
            extra = extra[pos >= 0]
            borrowed = pd.DataFrame({"unit": pos[pos >= 0], "dimension": extra["dimension"].to_numpy(),
                                     "value": extra["value"].to_numpy()})  # fmt: skip
            borrowed = borrowed[~borrowed["dimension"].isin(set(labels["dimension"]))]
            labels = pd.concat([labels, borrowed], ignore_index=True).drop_duplicates(ignore_index=True)
        issue_sql = f"SELECT {', '.join(_ISSUE_COLS)} FROM issues"
        issues = pd.read_sql_query(issue_sql + " WHERE (repo, number) IN (SELECT DISTINCT repo, issue_number "
                                   "FROM labels WHERE taxonomy = ?)", conn, params=[taxonomy])  # fmt: skip
        units = keys.merge(issues.rename(columns={"number": "issue_number"}), how="left",
                           on=["repo", "issue_number"])  # fmt: skip
        units.index.name = "unit"
    else:
        sources = []
        sql = f"SELECT {', '.join(_ISSUE_COLS)} FROM issues l WHERE is_reference = 0"
        for w in where:
            sql += f" AND {w}"
        units = pd.read_sql_query(sql + " ORDER BY repo, number", conn, params=args)
        units = units.rename(columns={"number": "issue_number"})
        units.insert(2, "record", "")
        units.index.name = "unit"
        labels = pd.DataFrame({"unit": pd.Series(dtype=int), "dimension": pd.Series(dtype=str),
                               "value": pd.Series(dtype=str)})  # fmt: skip
    units = _with_fixes(store, units)
    displays = _displays(store)
    displays.update({k.lower(): v for k, v in (names or {}).items()})
    units["group"] = units["repo"].map(displays).fillna(units["repo"])
    units["labels"] = units["labels"].map(_decode_labels)
    for col in ("created_at", "closed_at"):
        units[col] = pd.to_datetime(units[col], utc=True, errors="coerce", format="ISO8601")
    units["is_reference"] = units["is_reference"].fillna(1).astype(bool)
    if taxonomy and units["is_reference"].all():
        notes.append("all labelled issues are references (no text or dates): run `bugatlas collect` "
                     "to hydrate them for time and maintenance analyses")  # fmt: skip
    return StudyData(taxonomy=taxonomy, sources=sources, units=units, labels=labels, notes=notes)


def _decode_labels(v: Any) -> list[str]:
    if isinstance(v, str):
        try:
            out = orjson.loads(v)
        except orjson.JSONDecodeError:
            return []
        return out if isinstance(out, list) else []
    return []



def _with_fixes(store: Store, units: pd.DataFrame) -> pd.DataFrame:
    """Fix effort per issue from linked pull requests (sum over the PRs that close it or,
    when none is marked closing, every linked PR): PR count, lines added/deleted, files."""
    fixes = pd.read_sql_query(
        """SELECT f.repo, f.issue_number, COUNT(*) AS fix_prs, SUM(p.additions) AS fix_additions,
                  SUM(p.deletions) AS fix_deletions, SUM(p.changed_files) AS fix_files
           FROM issue_fixes f JOIN pull_requests p ON p.repo = f.pr_repo AND p.number = f.pr_number
           WHERE f.relation = 'closes' OR NOT EXISTS (
               SELECT 1 FROM issue_fixes g WHERE g.repo = f.repo AND g.issue_number = f.issue_number
               AND g.relation = 'closes')
           GROUP BY f.repo, f.issue_number""",
        store.conn,
    )
    out = units.reset_index().merge(fixes, how="left", on=["repo", "issue_number"]).set_index("unit")
    return out
