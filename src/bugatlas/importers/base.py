"""Shared machinery of the importers: reading files, detecting formats, transactional writes."""

from __future__ import annotations

import csv
import gzip
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml
from bugatlas.store import Issue, Label, Repository, Store

PROGRESS_MIN_BYTES = 1_000_000  # smaller files import before a progress bar is worth drawing
CHUNK = 2_000  # records parsed and written at a time
Progress = Callable[[int, int], None]  # (units done, units in file): bytes or records
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
    return load_yaml(text)


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


class _ByteCounter:
    """Reports how far through the file (on disk, compressed or not) reading has got."""

    def __init__(self, raw: io.BufferedReader, total: int, progress: Progress | None):
        self.raw, self.total, self.progress = raw, total, progress

    def tick(self) -> None:
        if self.progress:
            self.progress(self.raw.tell(), self.total)


def read_json_records(
    path: Path, progress: Progress | None = None
) -> Iterator[tuple[str, dict[str, Any] | BadRecord]]:
    """Records of a JSON array, a single JSON object, or JSON Lines (optionally gzipped).

    JSON Lines are streamed. Yields (location, record-or-BadRecord); a broken line is
    reported, never skipped silently. ``progress`` gets (bytes read, file size).
    """
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({one_line(exc)})") from exc
    with raw:
        counter = _ByteCounter(raw, path.stat().st_size, progress)
        stream = gzip.open(raw, "rb") if path.name.endswith(".gz") else raw
        try:
            head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
            head = head.lstrip(b"\xef\xbb\xbf").lstrip()
            if head.startswith(b"["):
                yield from _json_document(path, stream.read())
                counter.tick()
                return
            first = stream.readline().removeprefix(b"\xef\xbb\xbf")
            try:
                orjson.loads(first)
                one_per_line = True
            except orjson.JSONDecodeError:
                one_per_line = not first.lstrip(b"\xef\xbb\xbf").strip().startswith(b"{")
            if not one_per_line:  # a single pretty-printed object
                yield from _json_document(path, first + stream.read())
                return
            # Closed explicitly, so the read-ahead thread stops before the file closes (a caller
            # such as format sniffing may stop after one record).
            with closing(_prefetched_lines(stream)) as lines:
                for lineno, line in enumerate(_chain_first(first, lines), 1):
                    if lineno % 1000 == 0:
                        counter.tick()
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
            counter.tick()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BadInputError(f"{path}: cannot read ({one_line(exc)})") from exc


_PREFETCH_BYTES = 1 << 20  # lines handed over per block
T = TypeVar("T")


def read_ahead(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Importing is a pipeline: zlib decompression and SQLite writes release the GIL, so reading
    the next block and parsing the next chunk overlap writing the current one on a second
    core. Errors raised by ``items`` are re-raised in the consumer's thread; a consumer that
    stops early (format sniffing reads one record) stops the thread too.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer("item", item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer as is
            offer("error", exc)
            return
        offer("done", None)

    worker = threading.Thread(target=produce, name="bugatlas-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


def _prefetched_lines(stream: Any) -> Iterator[bytes]:
    with closing(read_ahead(iter(lambda: stream.readlines(_PREFETCH_BYTES), []))) as blocks:
        for block in blocks:
            yield from block


def _chain_first(first: bytes, stream: Any) -> Iterator[bytes]:
    yield first.lstrip(b"\xef\xbb\xbf")
    yield from stream


def _json_document(path: Path, data: bytes) -> Iterator[tuple[str, dict[str, Any] | BadRecord]]:
    try:
        doc = orjson.loads(data.lstrip(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise BadInputError(f"{path}: expected a JSON array of objects, got {type(doc).__name__}")
    for i, rec in enumerate(doc, 1):
        yield f"record {i}", rec if isinstance(rec, dict) else BadRecord(
            str(path), f"record {i}", f"expected a JSON object, got {type(rec).__name__}"
        )


def iter_jsonl_objects(
    path: str | Path, *, require: Sequence[str] = (), option: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, object) for each issue of a batch input file: JSON Lines, or one JSON array
    of objects (a saved GitHub API response), gzipped if the name ends in .gz; a UTF-8 byte
    order mark is ignored. The location is ``line N`` (``record N`` in an array).

    The reader of every batch interface (``filter``, ``classify``, ``diagnose``, ``eval``): a
    malformed line, a non-object or a missing ``require``d field raises one BadInputError
    naming the file and location (and ``option``, the command-line option that named the file).
    """
    path = Path(path)
    where = f"{option}: {path}" if option else str(path)
    if not path.is_file():
        raise BadInputError(f"{where}: no such file")
    try:
        fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")
    except OSError as exc:
        raise BadInputError(f"{where}: cannot read ({one_line(exc)})") from exc

    def checked(loc: str, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise BadInputError(f"{where}: {loc}: expected a JSON object")
        missing = [name for name in require if name not in obj]
        if missing:
            raise BadInputError(f"{where}: {loc}: missing field(s) {', '.join(map(repr, missing))}")
        return obj

    with fh:
        try:
            first = fh.readline().removeprefix(b"\xef\xbb\xbf")  # Windows editors write a BOM
            if first.lstrip().startswith(b"["):  # one JSON array, not one object a line
                try:
                    doc = orjson.loads(first + fh.read())
                except orjson.JSONDecodeError as exc:
                    raise BadInputError(f"{where}: invalid JSON array ({exc})") from exc
                for i, obj in enumerate(doc, 1):
                    yield f"record {i}", checked(f"record {i}", obj)
                return
            for lineno, line in enumerate(_chain_first(first, fh), 1):
                if not line.strip():
                    continue
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise BadInputError(f"{where}: line {lineno}: invalid JSON ({exc})") from exc
                yield f"line {lineno}", checked(f"line {lineno}", obj)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BadInputError(f"{where}: cannot read ({one_line(exc)})") from exc


def read_csv_rows(path: Path) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            # Header is line 1; DictReader's line_num counts physical lines read so far, so a
            # row starts on the line after the previous one ended (a quoted field may span lines).
            rows, start = [], reader.line_num + 1
            for row in reader:
                rows.append((f"line {start}", row))
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{path}: cannot read CSV ({one_line(exc)})") from exc
    return header, rows


# -- formats ---------------------------------------------------------------------------------
# A format's parser yields Parsed chunks, so big files stream into one transaction.
Parser = Callable[[Path, "Progress | None"], Iterator[Parsed]]


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
    _raise_if_broken_json(path)
    raise BadInputError(
        f"{path}: unknown format (expected GitHub issues as JSON/JSONL[.gz], the Liu et al. CSV, "
        f"or Open-LLM-Failures JSON); use --format {{{','.join(FORMATS)}}} to force one"
    )


def _raise_if_broken_json(path: Path) -> None:
    """A JSON file no format recognises because it is malformed: say where, not "unknown format"."""
    if not path.name.endswith(_DATA_SUFFIXES) or path.name.endswith((".csv", ".csv.gz")):
        return
    for _, rec in read_json_records(path):  # raises BadInputError naming the line of a broken document
        if isinstance(rec, BadRecord):
            raise BadInputError(str(rec))
        return


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
    files = iter_input_files(paths)
    if not files:
        raise BadInputError(f"{', '.join(map(str, paths))}: no data files found")
    results = []
    with store.run("import", {"paths": [str(p) for p in paths], "format": fmt, "skip_bad": skip_bad}) as run:
        for path in files:
            name = fmt or detect_format(path)
            parse, _ = _formats()[name]
            with _progress_bar(path, enabled=progress) as tick, store.transaction():
                result = ImportResult(str(path), name, 0, 0, 0, [])
                for chunk in read_ahead(parse(path, tick), depth=2):
                    if chunk.bad and not skip_bad:  # raising rolls the whole file back
                        raise BadInputError(f"{chunk.bad[0]} (nothing from this file was stored; "
                                            f"--skip-bad imports the good records)")  # fmt: skip
                    for repo in chunk.repositories:
                        store.upsert_repository(repo)
                    for label in chunk.labels:
                        label.run_id = run.id
                    result.records += chunk.records
                    result.issues += store.upsert_issues(chunk.issues)
                    result.labels += store.add_labels(chunk.labels)
                    result.bad += chunk.bad
            results.append(result)
        run.summary = {"files": [r.as_dict() | {"bad": len(r.bad)} for r in results]}
    return results


@contextmanager
def _progress_bar(path: Path, *, enabled: bool) -> Iterator[Progress | None]:
    if not enabled or path.stat().st_size < PROGRESS_MIN_BYTES:
        yield None
        return
    from rich import progress as rp

    columns = (rp.TextColumn(f"importing {path.name}"), rp.BarColumn(), rp.TaskProgressColumn(),
               rp.TimeRemainingColumn())  # fmt: skip
    with rp.Progress(*columns, transient=True) as bar:
        task = bar.add_task(path.name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
