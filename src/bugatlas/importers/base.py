"""Shared machinery of the importers: reading files, detecting formats, transactional writes."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from bugatlas.errors import BadInputError
from bugatlas.store import Issue, Label, Repository, Store

PROGRESS_THRESHOLD = 5_000  # records; smaller imports finish before a bar is worth drawing
_DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".csv", ".csv.gz")


@dataclass
class BadRecord:
    path: str
    location: str  # "line 12" or "record 3"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.location}: {self.message}"


@dataclass
class Parsed:
    """What a format parser produced from one file."""

    issues: list[Issue] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    repositories: list[Repository] = field(default_factory=list)
    records: int = 0
    bad: list[BadRecord] = field(default_factory=list)


@dataclass
class ImportResult:
    path: str
    format: str
    records: int
    issues: int
    labels: int
    bad: list[BadRecord]

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "records": self.records,
                "issues": self.issues, "labels": self.labels, "bad": [str(b) for b in self.bad]}  # fmt: skip


@cache
def dataset_facts() -> dict[str, Any]:
    text = (resources.files("bugatlas.codebooks") / "datasets.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def one_line(exc: Exception) -> str:
    """A pydantic/JSON error squeezed into one readable line."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        return f"field {loc!r}: {err['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# -- reading ---------------------------------------------------------------------------------
def open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_json_records(path: Path) -> Iterator[tuple[str, dict[str, Any] | BadRecord]]:
    """Records of a JSON array, a single JSON object, or JSON Lines (optionally gzipped).

    Yields (location, record-or-BadRecord); a broken line is reported, never skipped silently.
    """
    try:
        with open_text(path) as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise BadInputError(f"{path}: cannot read ({one_line(exc)})") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            line = text.count("\n", 0, exc.pos) + 1
            raise BadInputError(f"{path}: line {line}: invalid JSON ({exc.msg})") from exc
        for i, rec in enumerate(doc, 1):
            yield f"record {i}", rec if isinstance(rec, dict) else BadRecord(
                str(path), f"record {i}", f"expected a JSON object, got {type(rec).__name__}"
            )
        return
    lines = text.splitlines()
    if stripped.startswith("{") and len(lines) > 1:
        # One pretty-printed object spans lines; JSON Lines has one object per line.
        try:
            first = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            first = None
        if first is None:
            try:
                yield "record 1", orjson.loads(text)
                return
            except orjson.JSONDecodeError:
                pass
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield f"line {lineno}", BadRecord(str(path), f"line {lineno}", f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(rec, dict):
            rec = BadRecord(str(path), f"line {lineno}", f"expected a JSON object, got {type(rec).__name__}")
        yield f"line {lineno}", rec


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            # Header is line 1; DictReader's line_num counts physical lines read so far.
            rows = [(f"line {reader.line_num}", row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path}: cannot read CSV ({one_line(exc)})") from exc
    return header, rows


# -- formats ---------------------------------------------------------------------------------
Progress = Callable[[int, int], None]  # (records done, records in file)
Parser = Callable[[Path, Progress | None], Parsed]


def _formats() -> dict[str, tuple[Parser, Callable[[Path], bool]]]:
    from bugatlas.importers import github, liu2025, open_llm_failures

    return {
        "liu2025": (liu2025.parse_file, liu2025.sniff),
        "open-llm-failures": (open_llm_failures.parse_file, open_llm_failures.sniff),
        "github": (github.parse_file, github.sniff),
    }


FORMATS = ("github", "liu2025", "open-llm-failures")


def detect_format(path: str | Path) -> str:
    path = Path(path)
    for name, (_, sniff) in _formats().items():
        if sniff(path):
            return name
    raise BadInputError(
        f"{path}: unknown format (expected GitHub issues as JSON/JSONL[.gz], the Liu et al. CSV, "
        f"or Open-LLM-Failures JSON); use --format {{{','.join(FORMATS)}}} to force one"
    )


def first_json_record(path: Path) -> dict[str, Any] | None:
    if not path.name.endswith(_DATA_SUFFIXES) or path.name.endswith((".csv", ".csv.gz")):
        return None
    try:
        for _, rec in read_json_records(path):
            return rec if isinstance(rec, dict) else None
    except BadInputError:
        return None
    return None


def iter_input_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into the data files below them (sorted, so imports are repeatable)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(_DATA_SUFFIXES)))
        elif p.exists():
            out.append(p)
        else:
            raise BadInputError(f"{p}: no such file or folder")
    return out


# -- writing ---------------------------------------------------------------------------------
def import_paths(
    store: Store,
    paths: Sequence[str | Path],
    *,
    fmt: str | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> list[ImportResult]:
    """Import files (or folders of them) into ``store``; one transaction per file.

    Without ``skip_bad`` the first bad record raises :class:`BadInputError` naming the file
    and line, and that file writes nothing (files before it stay imported).
    """
    if fmt is not None and fmt not in FORMATS:
        raise BadInputError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    results = []
    files = iter_input_files(paths)
    if not files:
        raise BadInputError(f"{', '.join(map(str, paths))}: no data files found")
    with store.run("import", {"paths": [str(p) for p in paths], "format": fmt, "skip_bad": skip_bad}) as run:
        for path in files:
            name = fmt or detect_format(path)
            parse, _ = _formats()[name]
            parsed = _parse_with_progress(parse, path, progress)
            if parsed.bad and not skip_bad:
                raise BadInputError(f"{parsed.bad[0]} (nothing from this file was stored; "
                                    f"--skip-bad imports the good records)")  # fmt: skip
            with store.transaction():
                for repo in parsed.repositories:
                    store.upsert_repository(repo)
                n_issues = store.upsert_issues(parsed.issues)
                for label in parsed.labels:
                    label.run_id = run.id
                n_labels = store.add_labels(parsed.labels)
            results.append(ImportResult(str(path), name, parsed.records, n_issues, n_labels, parsed.bad))
        run.summary = {"files": [r.as_dict() | {"bad": len(r.bad)} for r in results]}
    return results


def _parse_with_progress(parse: Parser, path: Path, progress: bool) -> Parsed:
    if not progress:
        return parse(path, None)
    from rich import progress as rp

    bar = rp.Progress(rp.TextColumn("importing {task.description}"), rp.BarColumn(),
                      rp.MofNCompleteColumn(), rp.TimeRemainingColumn(), transient=True)  # fmt: skip
    task = None

    def tick(done: int, total: int) -> None:
        nonlocal task
        if total < PROGRESS_THRESHOLD:
            return
        if task is None:
            bar.start()
            task = bar.add_task(path.name, total=total)
        bar.update(task, completed=done)

    try:
        return parse(path, tick)
    finally:
        if task is not None:
            bar.stop()
