"""Offline replay of a crawl's raw-answer archive, and a canonical dump to compare stores.

``--archive`` keeps every GitHub answer in the store's ``collect_archive`` table (query and
variables sent, body received; never a header, so never a token). :func:`replay_archive`
applies those answers again, in order, through the very code the crawl used: a study can be
rebuilt byte for byte without the network.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bugatlas.collect.apply import apply_group
from bugatlas.errors import BadInputError
from bugatlas.files import replaced_when_complete
from bugatlas.store import Store

_ARCHIVE_COLS = ("run_id", "grp", "repo", "kind", "context", "method", "url", "request", "status",
                 "response", "received_at")  # fmt: skip


@dataclass
class ReplayResult:
    groups: int = 0
    responses: int = 0
    issues: int = 0
    comments: int = 0
    pull_requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _groups(store: Store, repos: Sequence[str] | None) -> Iterator[tuple[str, str, dict, list[dict]]]:
    sql = ("SELECT id, grp, repo, kind, context, request, response FROM collect_archive "
           "WHERE kind != 'fault'")  # fmt: skip
    args: list[Any] = []
    if repos:
        sql += f" AND repo IN ({', '.join('?' * len(repos))})"
        args = [r.lower() for r in repos]
    current: tuple[str, str, dict, list[dict]] | None = None
    current_grp = None
    for _id, grp, repo, kind, context, request, response in store.conn.execute(sql + " ORDER BY grp, id", args):
        item = {"request": orjson.loads(request) if request else None, "response": orjson.loads(response)}
        if grp != current_grp:
            if current is not None:
                yield current
            current = (repo, kind, orjson.loads(context) if context else {}, [item])
            current_grp = grp
        else:
            current[3].append(item)
    if current is not None:
        yield current


def replay_archive(
    store: Store,
    source: Store | str | Path | None = None,
    *,
    repos: Sequence[str] | None = None,
) -> ReplayResult:
    """Rebuild collected data into ``store`` from an archive, with no network.

    ``source``: the store holding the archive (a Store or a path); default ``store`` itself.
    The archive rows are copied into ``store`` too, so the rebuilt store can be replayed again.
    All in one transaction: a failed replay leaves ``store`` as it was.
    """
    own = scratch = False
    if source is None:
        src = store
    elif isinstance(source, Store):
        src = source
    else:
        path = Path(source)
        if not path.exists():
            raise BadInputError(f"--replay: {path}: no such store")
        if path.name.endswith((".jsonl", ".jsonl.gz")):
            src, own, scratch = _archive_file_as_store(path), True, True
        else:
            src, own = Store(path, create=False), True
    try:
        n = src.conn.execute("SELECT COUNT(*) FROM collect_archive").fetchone()[0]
        if n == 0:
            raise BadInputError(f"--replay: {src.path}: the archive is empty (collect with --archive first)")
        same = src is store or src.path.resolve() == store.path.resolve()
        if not same and store.conn.execute("SELECT 1 FROM collect_archive LIMIT 1").fetchone():
            raise BadInputError(f"--replay: {store.path} already holds an archive; replay into a new "
                                f"store, or into {src.path} itself to rebuild it in place")  # fmt: skip
        result = ReplayResult()
        with store.run("collect --replay", {"source": str(src.path), "repos": list(repos or [])}) as run:
            with store.transaction():
                if not same:
                    _copy_archive(src, store, repos)
                for repo, kind, context, items in _groups(store, repos):
                    counts = apply_group(store, repo, kind, context, items)
                    result.groups += 1
                    result.responses += len(items)
                    result.issues += counts["issues"]
                    result.comments += counts["comments"]
                    result.pull_requests += counts["pull_requests"]
            run.summary = result.as_dict()
        return result
    finally:
        if own:
            src.close()
            if scratch:  # an exported file loaded into a temporary store: remove it
                shutil.rmtree(src.path.parent, ignore_errors=True)


def _copy_archive(src: Store, dst: Store, repos: Sequence[str] | None) -> None:
    sql = f"SELECT id, {', '.join(_ARCHIVE_COLS)} FROM collect_archive"
    args: list[Any] = []
    if repos:
        sql += f" WHERE repo IN ({', '.join('?' * len(repos))})"
        args = [r.lower() for r in repos]
    grp_map: dict[int, int] = {}
    insert = (f"INSERT INTO collect_archive ({', '.join(_ARCHIVE_COLS)}) "
              f"VALUES ({', '.join('?' * len(_ARCHIVE_COLS))})")  # fmt: skip
    for row in src.conn.execute(sql + " ORDER BY id", args):
        old_id, values = row[0], list(row[1:])
        old_grp = values[1]
        values[0] = None  # run ids belong to the source store
        values[1] = grp_map.get(old_grp) if old_grp is not None else None
        cur = dst.conn.execute(insert, values)
        if old_grp == old_id or (old_grp is not None and old_grp not in grp_map):
            grp_map[old_grp] = cur.lastrowid
            dst.conn.execute("UPDATE collect_archive SET grp = ? WHERE id = ?", (cur.lastrowid, cur.lastrowid))


# -- archive files ---------------------------------------------------------------------------
def export_archive(store: Store, path: str | Path, *, repos: Sequence[str] | None = None) -> int:
    """Write the archive as JSON Lines (gzipped when ``path`` ends in .gz): the file a study
    ships so others can ``--replay`` it. Returns the number of answers written."""
    path = Path(path)
    sql = f"SELECT id, {', '.join(_ARCHIVE_COLS)} FROM collect_archive"
    args: list[Any] = []
    if repos:
        sql += f" WHERE repo IN ({', '.join('?' * len(repos))})"
        args = [r.lower() for r in repos]
    n = 0
    try:
        # written beside the file and renamed when complete (gzipped if .gz): an interrupt or an
        # empty archive leaves a previous export at that path whole
        with replaced_when_complete(path, option="--export-archive") as fh:
            for row in store.conn.execute(sql + " ORDER BY id", args):
                fh.write(orjson.dumps(dict(zip(("id", *_ARCHIVE_COLS), row, strict=True))) + b"\n")
                n += 1
            if n == 0:
                raise BadInputError(f"{store.path}: the archive is empty (collect with --archive first)")
    except OSError as exc:
        raise BadInputError(f"--export-archive: {path}: cannot write ({exc.strerror or exc})") from None
    return n


def _archive_file_as_store(path: Path) -> Store:
    """An exported archive loaded into a scratch store (in a temporary folder)."""
    import gzip
    import tempfile

    folder = tempfile.mkdtemp(prefix="bugatlas-replay-")
    scratch = Store(Path(folder) / "archive.db")
    opener = gzip.open if path.name.endswith(".gz") else open
    cols = ("id", *_ARCHIVE_COLS)
    try:
        with opener(path, "rb") as fh, scratch.transaction():
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = orjson.loads(line)
                    values = [rec[c] for c in cols]
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    raise BadInputError(f"{path}: line {lineno}: not an archive record ({exc})") from None
                scratch.conn.execute(
                    f"INSERT INTO collect_archive ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    values)  # fmt: skip
    except BaseException as exc:
        scratch.close()
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError | EOFError):  # EOFError: a truncated .gz
            raise BadInputError(f"{path}: cannot read ({exc})") from None
        raise
    return scratch


# -- canonical dump ---------------------------------------------------------------------------
def canonical_dump(store: Store, repos: Sequence[str] | None = None) -> bytes:
    """The collected data (issues with text, labels and counts; comments; pull requests; fixes;
    maintainers' labels) as sorted JSON Lines: equal bytes mean equal study data."""
    where, args = "", []
    if repos:
        where = f" WHERE repo IN ({', '.join('?' * len(repos))})"
        args = [r.lower() for r in repos]
    lines: list[bytes] = []
    tables = (
        ("issues", "SELECT repo, number, title, body, state, labels, author, author_association, "
                   "created_at, updated_at, closed_at, comments_count, reactions, is_pull_request, "
                   "html_url, is_reference FROM issues{w} ORDER BY repo, number"),
        ("comments", "SELECT repo, issue_number, comment_id, author, author_association, body, "
                     "created_at, updated_at FROM comments{w} ORDER BY repo, issue_number, comment_id"),
        ("fixes", "SELECT repo, issue_number, pr_repo, pr_number, relation FROM issue_fixes{w} "
                  "ORDER BY repo, issue_number, pr_repo, pr_number"),
        ("pull_requests", "SELECT repo, number, title, state, merged_at, additions, deletions, "
                          "changed_files, html_url FROM pull_requests{w} ORDER BY repo, number"),
    )  # fmt: skip
    for name, sql in tables:
        cur = store.conn.execute(sql.format(w=where), args)
        cols = [d[0] for d in cur.description]
        for row in cur:
            lines.append(orjson.dumps([name, dict(zip(cols, row, strict=True))], option=orjson.OPT_SORT_KEYS))
    return b"\n".join(lines) + b"\n"


def dump_digest(store: Store, repos: Sequence[str] | None = None) -> str:
    return hashlib.sha256(canonical_dump(store, repos)).hexdigest()
