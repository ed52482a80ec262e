"""The few codebook questions annotation asks, over the shared taxonomy API.

``bugatlas.taxonomy.load_codebook`` owns codebooks; this module only adapts its objects
(categories may come as a list or a dict) and accepts an already-loaded codebook too, so the
library can be driven with a user's codebook object.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bugatlas.errors import BadInputError


def load(taxonomy: Any) -> Any:
    """A codebook object for ``taxonomy`` (a name, a YAML path, a codebook already, or a
    sample: the YAML file it was drawn with, else its taxonomy's name)."""
    if hasattr(taxonomy, "params") and hasattr(taxonomy, "taxonomy"):  # a Sample
        taxonomy = (taxonomy.params or {}).get("codebook_file") or taxonomy.taxonomy
    if not isinstance(taxonomy, str):
        return taxonomy
    return _load(taxonomy)


def file_of(taxonomy: Any) -> str | None:
    """The absolute path of a codebook given as a YAML file (a user's codebook), else None:
    recorded with a sample so later commands can load it by the sample alone."""
    from pathlib import Path

    if isinstance(taxonomy, str) and taxonomy.endswith((".yaml", ".yml")) and Path(taxonomy).is_file():
        return str(Path(taxonomy).resolve())
    return None


@lru_cache(maxsize=32)
def _load(name: str) -> Any:
    from bugatlas.taxonomy import load_codebook

    try:
        return load_codebook(name)
    except (KeyError, FileNotFoundError) as exc:
        raise BadInputError(f"--taxonomy {name}: no such codebook ({exc})") from exc


def dimension_names(cb: Any) -> list[str]:
    return list(cb.dimensions)


def dimension(cb: Any, name: str) -> Any:
    if name not in cb.dimensions:
        raise BadInputError(
            f"codebook {cb.name}: no dimension {name!r} (has {', '.join(cb.dimensions)})"
        )
    return cb.dimensions[name]


def categories(cb: Any, dim: str) -> list[Any]:
    cats = dimension(cb, dim).categories
    return list(cats.values()) if isinstance(cats, dict) else list(cats)


def is_multi(cb: Any, dim: str) -> bool:
    return bool(getattr(dimension(cb, dim), "multi_label", False))


def levels(cb: Any, dim: str) -> list[str]:
    lv = list(getattr(dimension(cb, dim), "levels", None) or [])
    return lv or ["category"]


def leaf_names(cb: Any, dim: str) -> list[str]:
    return [c.name for c in cb.leaves(dim)]


def path_names(cb: Any, dim: str, value: str) -> list[str]:
    """Root-to-leaf names of ``value``; a value unknown to the codebook is its own path."""
    try:
        return [c.name for c in cb.path(dim, value)]
    except (KeyError, ValueError, LookupError):
        return [value]


def at_level(cb: Any, dim: str, value: str, level: int) -> str:
    """The ancestor of ``value`` at hierarchy ``level`` (0 = top); shallower values keep
    their deepest name, so a level never invents a category."""
    path = path_names(cb, dim, value)
    return path[min(level, len(path) - 1)]


def store_labels(cb: Any, dim: str, value: str) -> list[tuple[str, str]]:
    """(store dimension, category name) pairs for one chosen category, as the taxonomy API's
    ``Dimension.store_labels`` gives them (liu2025: ``symptom``/``unexpected_output``,
    ``root_cause_group``/``root_cause``; yu2026: the leaf in ``symptom`` and each ancestor in
    its level). Where several levels share one name (yu2026-artifact keeps full "A - B - C"
    paths in one dimension), only the deepest name is kept for that dimension, so a gold label
    looks like the published record it is compared with."""
    d = dimension(cb, dim)
    if hasattr(d, "store_labels"):
        pairs = list(d.store_labels(value))
    else:  # a codebook object without the helper: depth i goes to levels[i]
        path = path_names(cb, dim, value)
        lv = list(getattr(d, "levels", None) or [dim])
        pairs = [(lv[min(i, len(lv) - 1)], name) for i, name in enumerate(path)]
    lv = list(getattr(d, "levels", None) or [])
    if len(set(lv)) < len(lv):
        deepest: dict[str, str] = {}
        for sd, v in pairs:
            deepest[sd] = v
        pairs = list(deepest.items())
    return pairs


def level_keys(cb: Any, dim: str) -> list[str]:
    """Names for the hierarchy levels in reports: the codebook's level names, made unique
    ("symptom L1", "symptom L2", …) where the codebook repeats one."""
    lv = levels(cb, dim)
    if len(set(lv)) == len(lv):
        return lv
    return [f"{name} L{i + 1}" for i, name in enumerate(lv)]


def known_value(cb: Any, dim: str, value: str) -> str | None:
    """The category name for an id or name, or None if the dimension lacks it."""
    try:
        return cb.category(dim, value).name
    except (KeyError, ValueError, LookupError):
        return None


def tree(cb: Any, dim: str) -> list[dict[str, Any]]:
    """The dimension as nested dicts (name, id, definition, include, exclude, children) for
    pickers and Label Studio's Taxonomy tag."""
    cats = categories(cb, dim)
    by_parent: dict[Any, list[Any]] = {}
    for c in cats:
        by_parent.setdefault(c.parent, []).append(c)

    def node(c: Any) -> dict[str, Any]:
        return {
            "id": c.id,
            "name": c.name,
            "definition": getattr(c, "definition", "") or "",
            "include": list(getattr(c, "include", []) or []),
            "exclude": list(getattr(c, "exclude", []) or []),
            "children": [node(ch) for ch in by_parent.get(c.id, [])],
        }

    ids = {c.id for c in cats}
    return [node(c) for c in cats if c.parent is None or c.parent not in ids]
