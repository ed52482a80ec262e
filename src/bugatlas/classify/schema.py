"""What a classifier has to produce for a codebook: its dimensions, their categories, and
the levels of each hierarchy (``root_cause`` -> ``root_cause_group`` ...).

Built on the taxonomy API (``bugatlas.taxonomy.load_codebook``); nothing here knows a
particular codebook, so a user's own YAML codebook works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from bugatlas.errors import BadInputError


def load_codebook(name: str) -> Any:
    try:
        from bugatlas.taxonomy import load_codebook as _load
    except ImportError as exc:  # pragma: no cover - the taxonomy stage is part of the package
        raise BadInputError(f"taxonomy {name!r}: the taxonomy stage is not installed ({exc})") from None
    return _load(name)


@dataclass
class DimensionSpec:
    """One dimension a classifier predicts (its leaves) and the ancestor levels it reports."""

    name: str
    multi_label: bool
    leaves: list[str]
    # leaf name -> {output dimension: ancestor name} for every level above the leaf
    ancestors: dict[str, dict[str, str]] = field(default_factory=dict)
    level_dims: list[str] = field(default_factory=list)  # ancestor output dims, root first
    max_labels: int = 2
    # category name -> text describing it (definition, inclusion notes, signals)
    descriptions: dict[str, str] = field(default_factory=dict)
    signals: dict[str, list[str]] = field(default_factory=dict)  # a leaf's own signals
    # level dim -> ancestor name -> that ancestor's own signals
    group_signals: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def groups(self, level_dim: str) -> list[str]:
        seen: dict[str, None] = {}
        for anc in self.ancestors.values():
            if level_dim in anc:
                seen.setdefault(anc[level_dim], None)
        return list(seen)


def _level_dim(dim: str, level: str, depth: int) -> str:
    level = (level or "").strip().lower().replace(" ", "_")
    if not level or level == dim:
        return f"{dim}_level{depth}"
    return level if level.startswith(dim) else f"{dim}_{level}"


@dataclass
class TaxonomySpec:
    name: str
    dims: dict[str, DimensionSpec]
    codebook: Any = None

    @property
    def output_dims(self) -> list[str]:
        out: list[str] = []
        for spec in self.dims.values():
            out.append(spec.name)
            out.extend(spec.level_dims)
        return out

    @property
    def single_valued(self) -> list[str]:
        out = []
        for spec in self.dims.values():
            if not spec.multi_label:
                out.append(spec.name)
                out.extend(spec.level_dims)
        return out

    def expand(self, dim: str, leaves: list[str]) -> dict[str, list[str]]:
        """Leaf names of ``dim`` -> every output dimension's names (ancestors deduplicated)."""
        spec = self.dims[dim]
        out: dict[str, list[str]] = {dim: list(leaves)}
        for level in spec.level_dims:
            vals: list[str] = []
            for leaf in leaves:
                anc = spec.ancestors.get(leaf, {}).get(level)
                if anc and anc not in vals:
                    vals.append(anc)
            out[level] = vals
        return out

    def level_of(self, out_dim: str) -> tuple[str, str | None]:
        """(base dimension, level dim or None for the leaf level) of an output dimension."""
        if out_dim in self.dims:
            return out_dim, None
        for spec in self.dims.values():
            if out_dim in spec.level_dims:
                return spec.name, out_dim
        raise KeyError(out_dim)

    def parent_of(self, out_dim: str, value: str) -> str | None:
        """Map a value of an output dimension to itself if valid (used for gold checking)."""
        base, level = self.level_of(out_dim)
        spec = self.dims[base]
        if level is None:
            return value if value in spec.leaves else None
        return value if value in spec.groups(level) else None


def _text_of(cat: Any) -> str:
    parts = [getattr(cat, "name", "") or "", getattr(cat, "definition", "") or ""]
    parts += list(getattr(cat, "include", None) or [])
    return "\n".join(p for p in parts if p)


@cache
def taxonomy_spec(name: str) -> TaxonomySpec:
    """The classification spec of a codebook (built-in name or path to a YAML codebook)."""
    cb = load_codebook(name)
    dims: dict[str, DimensionSpec] = {}
    for dim_name, dim in cb.dimensions.items():
        leaves = list(cb.leaves(dim_name))
        leaf_names = [c.name for c in leaves]
        levels = list(getattr(dim, "levels", None) or [])
        spec = DimensionSpec(name=dim_name, multi_label=bool(getattr(dim, "multi_label", False)),
                             leaves=leaf_names)
        level_dims: list[str] = []
        for leaf in leaves:
            path = cb.path(dim_name, leaf.id)
            anc: dict[str, str] = {}
            for depth, node in enumerate(path[:-1]):
                level = levels[depth] if depth < len(levels) else ""
                ld = _level_dim(dim_name, level, depth)
                anc[ld] = node.name
                spec.group_signals.setdefault(ld, {})[node.name] = list(
                    getattr(node, "signals", None) or [])
                if ld not in level_dims:
                    level_dims.append(ld)
            spec.ancestors[leaf.name] = anc
            # a leaf's description includes its ancestors' (a group's wording helps its leaves)
            spec.descriptions[leaf.name] = "\n".join(_text_of(n) for n in path)
            spec.signals[leaf.name] = list(getattr(leaf, "signals", None) or [])
        spec.level_dims = level_dims
        dims[dim_name] = spec
    return TaxonomySpec(name=getattr(cb, "name", name), dims=dims, codebook=cb)
