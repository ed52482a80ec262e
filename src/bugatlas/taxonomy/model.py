"""Codebooks: taxonomies as data (dimensions of categories with definitions and signals).

A codebook is a YAML file. Every stage reads it through :class:`Codebook`; category names are
exactly the strings stored as label values, so a label in the store and a category in a codebook
meet by name without translation tables in code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bugatlas.errors import BadInputError


class CodebookError(BadInputError):
    """A codebook file that cannot be used; the message names the file and the category."""


def normalize_name(value: str) -> str:
    """Case, Unicode form and runs of whitespace do not distinguish category names.

    Published data carries such noise (e.g. "Environment Compatibility Issues -  Architecture
    Compatibility" with two spaces); lookups compare normalized forms, names stay verbatim."""
    value = unicodedata.normalize("NFKC", value)
    return re.sub(r"\s+", " ", value).strip().casefold()


# eq=False: categories hash by identity (codebooks are cached, so each category exists once).
@dataclass(frozen=True, eq=False)
class Category:
    id: str
    name: str
    dimension: str
    parent: str | None = None
    definition: str = ""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    # Counts printed in the source paper and counted in its published data, for comparison.
    published_count: int | None = None
    dataset_count: int | None = None
    verified: bool = True  # False: placement or definition not confirmed from the source
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def patterns(self) -> list[re.Pattern[str]]:
        """The signals compiled case-insensitively (each signal is a regular expression)."""
        return [re.compile(s, re.IGNORECASE) for s in self.signals]

    def matches(self, text: str) -> list[str]:
        """The stretches of ``text`` that match this category's signals (evidence)."""
        found = []
        for p in self.patterns:
            m = p.search(text)
            if m:
                found.append(m.group(0))
        return found

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name, "parent": self.parent,
                             "definition": self.definition, "include": self.include,
                             "exclude": self.exclude, "signals": self.signals,
                             "next_steps": self.next_steps}  # fmt: skip
        for key in ("aliases", "published_count", "dataset_count", "note"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if not self.verified:
            d["verified"] = False
        d.update(self.extra)
        return d


@dataclass
class Dimension:
    name: str
    categories: dict[str, Category]  # by id, in file order
    multi_label: bool = False
    levels: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""
    required: bool = False
    # When set, a label for a category is always stored in this dimension (the leaf), and each
    # ancestor in ``levels[depth]``; otherwise a category at depth d is stored in ``levels[d]``.
    leaf_dimension: str | None = None

    def __post_init__(self) -> None:
        self._by_name: dict[str, Category] = {}
        for c in self.categories.values():
            for key in (c.id, c.name, *c.aliases):
                self._by_name.setdefault(normalize_name(key), c)
        if not self.levels:
            self.levels = [self.name] if self.depth() <= 1 else [
                self.name if i == self.depth() - 1 else f"{self.name}_level{i}" for i in range(self.depth())
            ]  # fmt: skip

    def find(self, key: str) -> Category | None:
        """A category by id, exact name or alias (case- and whitespace-insensitive); None if unknown."""
        if key in self.categories:
            return self.categories[key]
        return self._by_name.get(normalize_name(key))

    def category(self, key: str) -> Category:
        c = self.find(key)
        if c is None:
            raise KeyError(f"dimension {self.name!r} has no category {key!r}")
        return c

    def children(self, key: str | None) -> list[Category]:
        """Direct children of a category (``None``: the top-level categories)."""
        pid = None if key is None else self.category(key).id
        return [c for c in self.categories.values() if c.parent == pid]

    def roots(self) -> list[Category]:
        return self.children(None)

    def leaves(self) -> list[Category]:
        parents = {c.parent for c in self.categories.values()}
        return [c for c in self.categories.values() if c.id not in parents]

    def path(self, key: str) -> list[Category]:
        """Root -> ... -> the category."""
        c = self.category(key)
        out = [c]
        while c.parent is not None:
            c = self.categories[c.parent]
            out.append(c)
        return out[::-1]

    def depth_of(self, key: str) -> int:
        return len(self.path(key)) - 1

    def depth(self) -> int:
        return max((self.depth_of(c.id) + 1 for c in self.categories.values()), default=0)

    def at_level(self, level: int | str) -> list[Category]:
        """Categories at a depth (0 = top), or at a named level from ``levels``."""
        if isinstance(level, str):
            level = self.levels.index(level)
        return [c for c in self.categories.values() if self.depth_of(c.id) == level]

    def level_name(self, key: str) -> str:
        """The store dimension where a label of this category's depth is kept."""
        return self.levels[min(self.depth_of(key), len(self.levels) - 1)]

    def store_labels(self, key: str) -> list[tuple[str, str]]:
        """(store dimension, value) pairs that record a label of this category in the store.

        Every level of the path gets its own dimension (e.g. yu2026: symptom_category,
        symptom_subcategory, symptom), so counts per level are plain queries."""
        path = self.path(key)
        out = [(self.levels[min(i, len(self.levels) - 1)], c.name) for i, c in enumerate(path)]
        if self.leaf_dimension:
            out = [(d, v) for d, v in out if d != self.leaf_dimension]
            out.append((self.leaf_dimension, path[-1].name))
        return list(dict.fromkeys(out))

    def ancestor_at(self, key: str, level: int | str) -> Category | None:
        """The category's ancestor (or itself) at a depth; None when it sits higher."""
        if isinstance(level, str):
            level = self.levels.index(level)
        p = self.path(key)
        return p[level] if level < len(p) else None

    def names(self) -> list[str]:
        return [c.name for c in self.categories.values()]


@dataclass
class Codebook:
    name: str
    title: str
    dimensions: dict[str, Dimension]
    citation: str = ""
    description: str = ""
    version: str = "1"
    source: str = ""  # the file it was read from
    builtin: bool = False
    mappings: dict[str, Any] = field(default_factory=dict)  # target codebook -> per-dimension map
    extra: dict[str, Any] = field(default_factory=dict)

    def dimension(self, name: str) -> Dimension:
        try:
            return self.dimensions[name]
        except KeyError:
            raise KeyError(
                f"codebook {self.name!r} has no dimension {name!r} (has: {', '.join(self.dimensions)})"
            ) from None

    def category(self, dimension: str, key: str) -> Category:
        return self.dimension(dimension).category(key)

    def find(self, dimension: str, key: str) -> Category | None:
        dim = self.dimensions.get(dimension)
        return dim.find(key) if dim else None

    def path(self, dimension: str, key: str) -> list[Category]:
        return self.dimension(dimension).path(key)

    def leaves(self, dimension: str) -> list[Category]:
        return self.dimension(dimension).leaves()

    def roots(self, dimension: str) -> list[Category]:
        return self.dimension(dimension).roots()

    def store_dimension(self, name: str) -> tuple[Dimension, int] | None:
        """Which codebook dimension (and depth) holds labels stored under dimension ``name``.

        E.g. in liu2025 ``unexpected_output`` -> (symptom, 1), ``root_cause_group`` ->
        (root_cause, 0)."""
        if name in self.dimensions:
            d = self.dimensions[name]
            return d, (d.levels.index(name) if name in d.levels else d.depth() - 1)
        for d in self.dimensions.values():
            if name in d.levels:
                return d, d.levels.index(name)
        return None

    def all_signals(self) -> list[tuple[Category, re.Pattern[str]]]:
        return [(c, p) for d in self.dimensions.values() for c in d.categories.values() for p in c.patterns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "citation": self.citation,
            "description": self.description, "version": self.version, "source": self.source,
            "dimensions": {
                n: {"title": d.title, "multi_label": d.multi_label, "levels": d.levels,
                    "leaf_dimension": d.leaf_dimension,
                    "description": d.description,
                    "categories": [c.to_dict() for c in d.categories.values()]}
                for n, d in self.dimensions.items()
            },
        }  # fmt: skip
