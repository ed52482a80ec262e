"""The stable batch format shared by ``classify``, ``diagnose`` and ``eval``.

Input: issues in the shared corpus format, one JSON object a line (``repo``, ``number``,
``title``, ``body``, optionally ``labels`` and the rest), plain or gzipped; one JSON array of
such objects reads the same.
Output: one prediction a line::

    {"repo": "vllm-project/vllm", "number": 1234, "taxonomy": "liu2025",
     "labels": {"symptom": ["Crash"], "root_cause": ["Incompatible Version"],
                "root_cause_group": ["Environment"], "component": [...], "phase": "Engine Setup"},
     "confidence": {"symptom": 0.93, ...}, "evidence": {"symptom": ["..."]}, "source": {...}}

A dimension whose codebook says single-valued is written as a string (or null when the
classifier abstained); multi-label dimensions as lists (empty when abstained). Gold files
use the same shape (``confidence`` optional), so one reader serves predictions and gold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.store.records import Issue


def _iter_json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    from bugatlas.importers.base import iter_jsonl_objects

    return iter_jsonl_objects(path)


def read_issues(path: str | Path) -> Iterator[Issue]:
    """Issues of a corpus-format JSON Lines file (``.gz`` allowed), in file order."""
    n = 0
    for loc, obj in _iter_json_lines(Path(path)):
        n += 1
        try:
            repo, number = obj["repo"], obj["number"]
        except KeyError as exc:
            raise BadInputError(f"{path}: {loc}: missing field {exc.args[0]!r}") from None
        try:
            if isinstance(number, bool | float):  # true would be issue 1, 12.7 issue 12
                raise TypeError
            number = int(number)
        except (ValueError, TypeError):
            raise BadInputError(f"{path}: {loc}: field 'number' is not an integer: {number!r}") from None
        labels = obj.get("labels") or []
        if not isinstance(labels, list):
            raise BadInputError(f"{path}: {loc}: field 'labels': expected a list of names, got {type(labels).__name__}")
        labels = [lab.get("name", "") if isinstance(lab, dict) else str(lab) for lab in labels]
        try:
            yield Issue(repo=repo, number=number, title=obj.get("title"), body=obj.get("body"),
                        labels=labels, state=obj.get("state"), html_url=obj.get("html_url"))
        except (ValueError, TypeError) as exc:
            raise BadInputError(f"{path}: {loc}: {one_line(exc)}") from None
    if n == 0:
        raise BadInputError(f"{path}: no issues in the file (empty)")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


@dataclass
class LabelRecord:
    """One line of a predictions (or gold) file."""

    repo: str
    number: int
    taxonomy: str
    labels: dict[str, list[str]]
    confidence: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, list[str]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        return (self.repo.lower(), self.number)

    def to_json(self, single_valued: Iterable[str] = ()) -> dict[str, Any]:
        single = set(single_valued)
        labels: dict[str, Any] = {}
        for dim, values in self.labels.items():
            labels[dim] = (values[0] if values else None) if dim in single else list(values)
        out: dict[str, Any] = {"repo": self.repo, "number": self.number, "taxonomy": self.taxonomy,
                               "labels": labels, "confidence": self.confidence}
        if self.evidence:
            out["evidence"] = self.evidence
        if self.source:
            out["source"] = self.source
        return out


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and v != ""]
    raise TypeError(f"expected a name or a list of names, got {type(value).__name__}")


def read_label_records(path: str | Path, *, taxonomy: str | None = None) -> list[LabelRecord]:
    """Predictions or gold labels in the batch format. ``taxonomy`` (when given) is the one a
    record without a ``taxonomy`` field belongs to; a record of another taxonomy is an error."""
    out = []
    for loc, obj in _iter_json_lines(Path(path)):
        where = f"{path}: {loc}"
        try:
            repo, number, raw = obj["repo"], obj["number"], obj["labels"]
        except KeyError as exc:
            raise BadInputError(f"{where}: missing field {exc.args[0]!r}") from None
        if not isinstance(repo, str):
            raise BadInputError(f"{where}: field 'repo' is not a string: {repo!r}")
        try:
            number = int(number)
        except (ValueError, TypeError):
            raise BadInputError(f"{where}: field 'number' is not an integer: {number!r}") from None
        tax = obj.get("taxonomy") or taxonomy or ""
        if taxonomy and tax != taxonomy:
            raise BadInputError(f"{where}: taxonomy {tax!r}, expected {taxonomy!r}")
        if not isinstance(raw, dict):
            raise BadInputError(f"{where}: 'labels' must be an object of dimension -> names")
        try:
            labels = {dim: _as_list(v) for dim, v in raw.items()}
        except TypeError as exc:
            raise BadInputError(f"{where}: {exc}") from None
        conf = obj.get("confidence") or {}
        try:
            confidence = {k: float(v) for k, v in conf.items() if v is not None}
        except (AttributeError, ValueError, TypeError):
            raise BadInputError(f"{where}: 'confidence' must be an object of dimension -> number") from None
        out.append(LabelRecord(repo=repo.lower(), number=number, taxonomy=tax, labels=labels,
                               confidence=confidence,
                               evidence=obj.get("evidence") or {}, source=obj.get("source") or {}))
    return out


class LabelWriter:
    """Writes prediction records, one JSON object a line (a context manager); the output is
    replaced only when complete (see :func:`bugatlas.files.replaced_when_complete`)."""

    def __init__(self, path: str | Path, single_valued: Iterable[str] = ()):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise BadInputError(f"{self.path}: folder {self.path.parent} does not exist")
        if self.path.is_dir():
            raise BadInputError(f"{self.path}: is a folder, not a file to write")
        self.single = set(single_valued)
        self._file = replaced_when_complete(self.path)
        self.count = 0

    def write(self, record: LabelRecord) -> None:
        self._fh.write(orjson.dumps(record.to_json(self.single)) + b"\n")
        self.count += 1

    def __enter__(self) -> LabelWriter:
        self._fh = self._file.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file.__exit__(*exc)


def write_label_records(path: str | Path, records: Iterable[LabelRecord],
                        single_valued: Iterable[str] = ()) -> int:
    with LabelWriter(path, single_valued) as w:
        for rec in records:
            w.write(rec)
        return w.count
