"""What a classifier has to produce for a codebook: its dimensions, their leaves, and the
store dimensions every level of a leaf's path is written to (liu2025: ``symptom`` +
``unexpected_output``, ``root_cause_group`` + ``root_cause``; yu2026: ``symptom_category``,
``symptom_subcategory``, ``symptom`` ...), all read from the taxonomy API, so a user's own
YAML codebook works the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml


def load_codebook(name: str) -> Any:
    from bugatlas.taxonomy import load_codebook as _load

    try:
        return _load(name)
    except KeyError as exc:
        raise BadInputError(f"taxonomy {name!r}: {exc.args[0] if exc.args else exc}") from None


@dataclass
class DimensionSpec:
    """One codebook dimension: the leaves a classifier scores and where each is stored."""

    name: str
    multi_label: bool
    leaves: list[str]
    out_dims: list[str]                        # store dimensions, top level first
    store: dict[str, dict[str, str]]           # leaf -> {out dim: value on the leaf's path}
    max_labels: int = 2
    descriptions: dict[str, str] = field(default_factory=dict)   # category name -> text
    signals: dict[str, list[str]] = field(default_factory=dict)  # category name -> own signals
    placed: dict[str, str] = field(default_factory=dict)         # category name -> its out dim

    def values(self, out_dim: str) -> list[str]:
        return list(dict.fromkeys(m[out_dim] for m in self.store.values() if out_dim in m))

    def leaves_under(self, out_dim: str, value: str) -> list[str]:
        return [leaf for leaf, m in self.store.items() if m.get(out_dim) == value]

    @property
    def leaf_dims(self) -> list[str]:
        """Out dims whose values are exactly the leaves (no separate model head needed)."""
        return [d for d in self.out_dims if set(self.values(d)) == set(self.leaves)]


@dataclass
class TaxonomySpec:
    name: str
    dims: dict[str, DimensionSpec]
    codebook: Any = None

    @property
    def output_dims(self) -> list[str]:
        return [d for spec in self.dims.values() for d in spec.out_dims]

    @property
    def single_valued(self) -> list[str]:
        return [d for spec in self.dims.values() if not spec.multi_label for d in spec.out_dims]

    def base_of(self, out_dim: str) -> str:
        for spec in self.dims.values():
            if out_dim in spec.out_dims:
                return spec.name
        raise KeyError(out_dim)

    def expand(self, dim: str, leaves: list[str]) -> dict[str, list[str]]:
        """Leaf names of ``dim`` -> names in every out dim (deduplicated, in order)."""
        spec = self.dims[dim]
        out: dict[str, list[str]] = {d: [] for d in spec.out_dims}
        for leaf in leaves:
            for d, v in spec.store.get(leaf, {}).items():
                if v not in out[d]:
                    out[d].append(v)
        return out

    def valid(self, out_dim: str, value: str) -> bool:
        return value in self.dims[self.base_of(out_dim)].values(out_dim)


def package_files_apply(spec: TaxonomySpec) -> bool:
    """Whether the package's files named after this codebook (signatures/<name>.yaml, the shipped
    models/<name>.pkl.xz) are meant for it: always for a built-in codebook, never for a user's
    file that takes a built-in's name (they were written for the built-in's categories)."""
    from bugatlas.taxonomy.loader import BUILTIN_DIR

    cb = spec.codebook
    return bool(cb is None or cb.builtin or not any((BUILTIN_DIR / f"{spec.name}{ext}").is_file()
                                                     for ext in (".yaml", ".yml")))


def check_same_codebook(model_spec: TaxonomySpec, where: str) -> None:
    """A saved model answers in the categories of the codebook it was fitted on: refuse it when
    the codebook of that name now has other categories (renamed, removed, moved), whose labels
    it would silently drop or misplace."""
    current = taxonomy_spec(model_spec.name)
    for dim, dspec in model_spec.dims.items():
        now = current.dims.get(dim)
        if now is None:
            raise BadInputError(f"{where}: fitted on codebook {model_spec.name!r} with a dimension {dim!r} the "
                                f"codebook no longer has: fit it again (`bugatlas train`)")
        if now.store != dspec.store:
            gone = sorted(set(dspec.store) - set(now.store)) or sorted(
                k for k in dspec.store if dspec.store[k] != now.store.get(k))
            new = sorted(set(now.store) - set(dspec.store))
            what = "; ".join(x for x in (f"not in the codebook now: {', '.join(map(repr, gone[:3]))}" if gone else "",
                                         f"new: {', '.join(map(repr, new[:3]))}" if new else "") if x)
            raise BadInputError(f"{where}: fitted on another version of codebook {model_spec.name!r} "
                                f"(dimension {dim}: {what}): fit it again (`bugatlas train`)")


def _text_of(cat: Any) -> str:
    parts = [getattr(cat, "name", "") or "", getattr(cat, "definition", "") or ""]
    parts += list(getattr(cat, "include", None) or [])
    return "\n".join(p for p in parts if p)


_BY_CODEBOOK_NAME: dict[str, TaxonomySpec] = {}


def taxonomy_spec(name: str) -> TaxonomySpec:
    """The spec of a codebook given by name or YAML path; a user codebook loaded from a path
    is found by its own name afterwards (labels and runs record that name): the file loaded
    last under that name, read again when it changed (a notebook editing its codebook, or
    two studies' files of one name in one process)."""
    from bugatlas.taxonomy.loader import is_codebook_path

    if is_codebook_path(name):
        path = Path(name).expanduser().resolve()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0  # missing: load_codebook says so in its own words
        spec = _taxonomy_spec(str(path) if mtime else str(name), mtime)
        _BY_CODEBOOK_NAME[spec.name] = spec
        return spec
    if name in _BY_CODEBOOK_NAME:
        return _BY_CODEBOOK_NAME[name]
    spec = _taxonomy_spec(str(name), 0)
    _BY_CODEBOOK_NAME.setdefault(spec.name, spec)
    return spec


@contextmanager
def names_resolved_as_files(*names: str) -> Iterator[None]:
    """Within the block, these codebook names mean the file the name resolves to (a user's
    codebook folder, else the built-in), not a file loaded earlier by path under that name, which
    keeps that role afterwards. For a built-in's own files (its shipped model, lent to another
    taxonomy) in a session that loaded a user's file of the built-in's name."""
    saved = {n: _BY_CODEBOOK_NAME.pop(n) for n in names if n in _BY_CODEBOOK_NAME}
    try:
        yield
    finally:
        for n in names:
            _BY_CODEBOOK_NAME.pop(n, None)
        _BY_CODEBOOK_NAME.update(saved)


@cache
def _taxonomy_spec(name: str, mtime: int) -> TaxonomySpec:  # mtime: a changed file is read again
    """The classification spec of a codebook, with per-dimension settings of the package's
    signature file (how many labels a multi-label dimension may get)."""
    spec = _base_spec(name)
    from bugatlas.classify.rules import signatures_path

    # the package's signature file is written for its own codebook, not a user's file of that name
    path = signatures_path(spec.name) if package_files_apply(spec) else None
    if path is not None:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        for dim, block in (data.get("dimensions") or {}).items():
            if dim in spec.dims and "max_labels" in (block or {}):
                spec.dims[dim].max_labels = int(block["max_labels"])
    return spec


def _base_spec(name: str) -> TaxonomySpec:
    """The classification spec of a codebook (built-in name or path to a YAML codebook)."""
    cb = load_codebook(name)
    dims: dict[str, DimensionSpec] = {}
    for dim_name, dim in cb.dimensions.items():
        leaves = list(dim.leaves())
        store: dict[str, dict[str, str]] = {}
        out_dims: list[str] = []
        for leaf in leaves:
            pairs = dim.store_labels(leaf.id)
            store[leaf.name] = dict(pairs)
            for d, _ in pairs:
                if d not in out_dims:
                    out_dims.append(d)
        order = {lv: i for i, lv in enumerate(getattr(dim, "levels", None) or [])}
        out_dims.sort(key=lambda d: order.get(d, len(order)))
        spec = DimensionSpec(name=dim_name, multi_label=bool(dim.multi_label),
                             leaves=[c.name for c in leaves], out_dims=out_dims, store=store)
        for cat in dim.categories.values():
            spec.signals[cat.name] = list(cat.signals or [])
            spec.placed[cat.name] = dim.store_labels(cat.id)[-1][0] if cat.parent is None else next(
                (d for d, v in dim.store_labels(cat.id) if v == cat.name), dim_name)
        for leaf in leaves:
            # a leaf's description includes its ancestors' (a group's wording helps its leaves)
            spec.descriptions[leaf.name] = "\n".join(_text_of(n) for n in dim.path(leaf.id))
        for cat in dim.categories.values():
            spec.descriptions.setdefault(cat.name, _text_of(cat))
        dims[dim_name] = spec
    return TaxonomySpec(name=cb.name, dims=dims, codebook=cb)
