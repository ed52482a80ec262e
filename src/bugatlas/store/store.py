"""The study store: one embedded SQLite file that every pipeline stage reads and writes.

Stages use the small interface below (upserts, label writes, iterators, data frames,
transactions, provenance runs). Stage-specific tables are added by migration files in
``migrations/`` (named ``NNNN_stage.sql``, applied once each in name order) and reached
through :attr:`Store.conn` inside :meth:`Store.transaction`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store.records import Comment, Fix, Issue, Label, PullRequest, Repository

DEFAULT_DB = "bugatlas.db"
ISSUE_COLUMNS = (
    "repo", "number", "title", "body", "state", "labels", "author", "author_association",
    "created_at", "updated_at", "closed_at", "comments_count", "reactions", "is_pull_request",
    "html_url", "is_reference", "source", "raw",
)  # fmt: skip
_JSON_ISSUE_COLUMNS = {"labels", "reactions", "raw"}
_TEXT_IN_COLUMNS = ("title", "body")  # held verbatim in columns, not again in raw


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_db_path() -> Path:
    return Path(os.environ.get("BUGATLAS_DB") or DEFAULT_DB)


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _param(value: Any) -> Any:
    """A numpy scalar (a number taken from a frame) as its Python value: sqlite3 binds it as
    a BLOB through the buffer protocol, which matches nothing."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("bugatlas.store") / "migrations"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


class Store:
    """An open study store.

    >>> store = Store("study.db")           # created and migrated if new
    >>> store.upsert_issues([Issue(repo="vllm-project/vllm", number=1, title="...")])
    >>> df = store.issues_frame()
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else default_db_path()
        if not create and not self.path.exists():
            raise BugAtlasError(f"{self.path}: no study store here (run an import or collect first)")
        if self.path.parent and not self.path.parent.exists():
            raise BugAtlasError(f"{self.path}: folder {self.path.parent} does not exist")
        try:
            # check_same_thread=False: the annotation server shares one store across request
            # threads; every write goes through transaction(), which serialises on a lock.
            is_new = not self.path.exists() or self.path.stat().st_size == 0
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            if is_new:  # issue bodies are kilobytes: big pages mean fewer overflow pages (bench/)
                self.conn.execute("PRAGMA page_size=16384")
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise BugAtlasError(f"{self.path}: not a BugAtlas store ({exc})") from exc
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk imports touch many pages
        self._lock = threading.RLock()
        self._depth = 0
        self.migrate()

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[str]:
        """Apply the migrations this store has not seen yet; return their names."""
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = {r[0] for r in self.conn.execute("SELECT name FROM schema_migrations")}
        known = _migrations()
        unknown = done - {name for name, _ in known}
        if unknown:
            raise BugAtlasError(
                f"{self.path}: written by a newer BugAtlas (unknown migrations: "
                f"{', '.join(sorted(unknown))}); upgrade bugatlas"
            )
        applied = []
        for name, sql in known:
            if name in done:
                continue
            with self.transaction():
                for statement in _split_sql(sql):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?)", (name, now_iso())
                )
            applied.append(name)
        return applied

    @property
    def schema_version(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM schema_migrations ORDER BY name")]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing writes. Nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
            finally:
                self._depth = 0

    # -- provenance --------------------------------------------------------------------------
    def start_run(self, command: str, params: dict[str, Any] | None = None) -> int:
        from bugatlas import __version__

        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs (command, params, version, started_at) VALUES (?, ?, ?, ?)",
                (command, _dumps(params or {}), __version__, now_iso()),
            )
        return int(cur.lastrowid)

    def save_run_summary(self, run_id: int, summary: dict) -> None:
        """A running job's summary so far; written in the transaction of the work it describes,
        so a run killed halfway still says what its stored results are."""
        with self.transaction():
            self.conn.execute("UPDATE runs SET summary=? WHERE id=?", (_dumps(summary), run_id))

    def finish_run(self, run_id: int, status: str = "ok", summary: dict | None = None) -> None:
        with self.transaction():
            self.conn.execute(
                "UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                (now_iso(), status, _dumps(summary), run_id),
            )

    @contextmanager
    def run(self, command: str, params: dict[str, Any] | None = None) -> Iterator[RunHandle]:
        """Record a command's provenance; marks the run failed if the body raises."""
        handle = RunHandle(self.start_run(command, params))
        try:
            yield handle
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: not a failure of the command
            self.finish_run(handle.id, "interrupted", {"error": str(exc) or "interrupted (Ctrl-C)", **handle.summary})
            raise
        except BaseException as exc:
            self.finish_run(handle.id, "failed", {"error": str(exc)[:500] or type(exc).__name__, **handle.summary})
            raise
        self.finish_run(handle.id, "ok", handle.summary)

    def runs(self, command: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs" + (" WHERE command = ?" if command else "") + " ORDER BY id"
        return [self._row(r, json_cols={"params", "summary"}) for r in self._query(sql, (command,) if command else ())]

    # -- repositories ---------------------------------------------------------------------
    def upsert_repository(self, repo: Repository) -> None:
        with self.transaction():
            self.conn.execute(
                """INSERT INTO repositories (full_name, owner, name, display, kind, extra)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (full_name) DO UPDATE SET
                     display = COALESCE(excluded.display, display),
                     kind = COALESCE(excluded.kind, kind),
                     extra = COALESCE(excluded.extra, extra)""",
                (repo.full_name, repo.owner, repo.name, repo.display, repo.kind, _dumps(repo.extra)),
            )

    def repositories(self) -> list[dict[str, Any]]:
        return [self._row(r, json_cols={"extra"}) for r in self._query("SELECT * FROM repositories ORDER BY full_name")]

    # -- issues ----------------------------------------------------------------------------
    def upsert_issues(self, issues: Iterable[Issue]) -> int:
        """Insert or update issues (keyed by repo and number). A reference-only record never
        overwrites an issue whose text is already stored. Returns the number written."""
        full_sql = (
            f"INSERT INTO issues ({', '.join(ISSUE_COLUMNS)}) VALUES ({', '.join('?' * len(ISSUE_COLUMNS))}) "
            "ON CONFLICT (repo, number) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in ISSUE_COLUMNS[2:])
        )
        ref_sql = (
            f"INSERT INTO issues ({', '.join(ISSUE_COLUMNS)}) VALUES ({', '.join('?' * len(ISSUE_COLUMNS))}) "
            "ON CONFLICT (repo, number) DO UPDATE SET html_url = COALESCE(html_url, excluded.html_url)"
        )
        full_rows, ref_rows, repos = [], [], set()
        for issue in issues:
            row = self._issue_row(issue)
            (ref_rows if issue.is_reference else full_rows).append(row)
            repos.add(issue.repo)
        with self.transaction():
            for repo in repos - self._known_repos():
                owner, name = repo.split("/")
                self.conn.execute(
                    "INSERT OR IGNORE INTO repositories (full_name, owner, name) VALUES (?, ?, ?)",
                    (repo, owner, name),
                )
            if full_rows:
                self.conn.executemany(full_sql, full_rows)
            if ref_rows:
                self.conn.executemany(ref_sql, ref_rows)
        return len(full_rows) + len(ref_rows)

    def _known_repos(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT full_name FROM repositories")}

    @staticmethod
    def _issue_row(i: Issue) -> tuple:
        raw = i.raw
        if raw is not None and ("title" in raw or "body" in raw):
            raw = {k: v for k, v in raw.items() if k not in _TEXT_IN_COLUMNS}
        return (
            i.repo, i.number, i.title, i.body, i.state, orjson.dumps(i.labels).decode(), i.author,
            i.author_association, i.created_at, i.updated_at, i.closed_at, i.comments_count,
            _dumps(i.reactions), int(i.is_pull_request), i.html_url, int(i.is_reference), i.source,
            _dumps(raw),
        )  # fmt: skip

    def get_issue(self, repo: str, number: int) -> Issue | None:
        rows = list(self.iter_issues(where="repo = ? AND number = ?", params=(repo.lower(), _param(number))))
        return rows[0] if rows else None

    def iter_issues(
        self,
        *,
        repos: Sequence[str] | None = None,
        where: str | None = None,
        params: Sequence[Any] = (),
        include_references: bool = False,
        include_raw: bool = False,
    ) -> Iterator[Issue]:
        """Issues in (repo, number) order. ``where`` is an extra SQL condition on ``issues``."""
        cols = [c for c in ISSUE_COLUMNS if include_raw or c != "raw"]
        clauses, args = [], [_param(p) for p in params]
        if where:
            clauses.append(f"({where})")
        if isinstance(repos, str):  # one name, not its letters
            repos = [repos]
        if repos:
            clauses.append(f"repo IN ({', '.join('?' * len(repos))})")
            args += [r.lower() for r in repos]
        if not include_references:
            clauses.append("is_reference = 0")
        sql = f"SELECT {', '.join(cols)} FROM issues"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY repo, number"
        for row in self.conn.execute(sql, args):
            data = dict(zip(cols, row, strict=True))
            for col in _JSON_ISSUE_COLUMNS & data.keys():
                data[col] = _loads(data[col])
            data["labels"] = data["labels"] or []
            if data.get("raw") is not None:
                data["raw"] = {**data["raw"], "title": data["title"], "body": data["body"]}
            yield Issue.model_construct(**data)

    def count_issues(self, *, include_references: bool = True) -> int:
        sql = "SELECT COUNT(*) FROM issues" + ("" if include_references else " WHERE is_reference = 0")
        return int(self.conn.execute(sql).fetchone()[0])

    def issues_frame(self, *, include_references: bool = False, columns: Sequence[str] | None = None):
        """The issues as a pandas DataFrame (labels decoded to lists; no raw JSON)."""
        import pandas as pd

        cols = list(columns or [c for c in ISSUE_COLUMNS if c != "raw"])
        sql = f"SELECT {', '.join(cols)} FROM issues"
        if not include_references:
            sql += " WHERE is_reference = 0"
        df = pd.read_sql_query(sql + " ORDER BY repo, number", self.conn)
        for col in ({"labels", "reactions"} & set(cols)):
            df[col] = df[col].map(lambda v: _loads(v) if isinstance(v, str) else None)
        for col in ({"is_pull_request", "is_reference"} & set(cols)):  # SQLite keeps them as 0/1
            df[col] = df[col].astype(bool)
        return df

    # -- comments, pull requests, fixes ----------------------------------------------------
    def upsert_comments(self, comments: Iterable[Comment]) -> int:
        rows = [
            (c.repo, c.issue_number, c.comment_id, c.author, c.author_association, c.body,
             c.created_at, c.updated_at, _dumps(c.raw))
            for c in comments
        ]  # fmt: skip
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO comments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def upsert_pull_requests(self, prs: Iterable[PullRequest]) -> int:
        rows = [
            (p.repo, p.number, p.title, p.state, p.merged_at, p.additions, p.deletions,
             p.changed_files, p.html_url, _dumps(p.raw))
            for p in prs
        ]  # fmt: skip
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO pull_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
        return len(rows)

    def add_fixes(self, fixes: Iterable[Fix]) -> int:
        rows = [(f.repo, f.issue_number, f.pr_repo, f.pr_number, f.relation) for f in fixes]
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO issue_fixes VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def comments_for(self, repo: str, number: int) -> list[dict[str, Any]]:
        sql = "SELECT * FROM comments WHERE repo = ? AND issue_number = ? ORDER BY created_at, comment_id"
        return [self._row(r, json_cols={"raw"}) for r in self._query(sql, (repo.lower(), _param(number)))]

    def fixes_for(self, repo: str, number: int) -> list[dict[str, Any]]:
        sql = """SELECT f.relation, p.* FROM issue_fixes f
                 LEFT JOIN pull_requests p ON p.repo = f.pr_repo AND p.number = f.pr_number
                 WHERE f.repo = ? AND f.issue_number = ?"""
        return [self._row(r, json_cols={"raw"}) for r in self._query(sql, (repo.lower(), _param(number)))]

    # -- labels ----------------------------------------------------------------------------
    def add_labels(self, labels: Iterable[Label]) -> int:
        """Insert labels; an identical label from the same source updates confidence/evidence."""
        created = now_iso()
        rows = [
            (l.repo, l.issue_number, l.taxonomy, l.dimension, l.value, l.source_kind, l.source,
             l.record, l.confidence, _dumps(l.evidence), l.run_id, created)
            for l in labels
        ]  # fmt: skip
        with self.transaction():
            self.conn.executemany(
                """INSERT INTO labels (repo, issue_number, taxonomy, dimension, value, source_kind,
                       source, record, confidence, evidence, run_id, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (repo, issue_number, taxonomy, dimension, value, source_kind, source, record)
                   DO UPDATE SET confidence = excluded.confidence, evidence = excluded.evidence,
                                 run_id = excluded.run_id""",
                rows,
            )
        return len(rows)

    def replace_labels(
        self, taxonomy: str, source_kind: str, source: str, labels: Iterable[Label],
        *, issues: Iterable[tuple[str, int]] | None = None,
    ) -> int:
        """Replace one source's labels in a taxonomy (all of them, or only for ``issues``)
        in one transaction: a re-run of a classifier leaves no stale labels behind."""
        with self.transaction():
            if issues is None:
                self.conn.execute(
                    "DELETE FROM labels WHERE taxonomy = ? AND source_kind = ? AND source = ?",
                    (taxonomy, source_kind, source),
                )
            else:
                self.conn.executemany(
                    "DELETE FROM labels WHERE taxonomy = ? AND source_kind = ? AND source = ? "
                    "AND repo = ? AND issue_number = ?",
                    [(taxonomy, source_kind, source, r.lower(), _param(n)) for r, n in issues],
                )
            return self.add_labels(labels)

    def iter_labels(
        self,
        taxonomy: str | None = None,
        *,
        dimension: str | None = None,
        source_kind: str | None = None,
        source: str | None = None,
        repo: str | None = None,
        issue_number: int | None = None,
    ) -> Iterator[Label]:
        clauses, args = [], []
        for col, val in (("taxonomy", taxonomy), ("dimension", dimension), ("source_kind", source_kind),
                         ("source", source), ("repo", repo.lower() if repo else None),
                         ("issue_number", issue_number)):  # fmt: skip
            if val is not None:
                clauses.append(f"{col} = ?")
                args.append(_param(val))
        sql = ("SELECT repo, issue_number, taxonomy, dimension, value, source_kind, source, record, "
               "confidence, evidence, run_id FROM labels")  # fmt: skip
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        for row in self.conn.execute(sql + " ORDER BY id", args):
            (repo_, num, tax, dim, value, kind, src, rec, conf, ev, run) = row
            yield Label.model_construct(
                repo=repo_, issue_number=num, taxonomy=tax, dimension=dim, value=value,
                source_kind=kind, source=src, record=rec, confidence=conf, evidence=_loads(ev),
                run_id=run,
            )  # fmt: skip

    def labels_frame(self, taxonomy: str | None = None, *, source_kind: str | None = None,
                     source: str | None = None):
        """Labels as a pandas DataFrame, one row per label value."""
        import pandas as pd

        rows = [l.model_dump() for l in self.iter_labels(taxonomy, source_kind=source_kind, source=source)]
        cols = list(Label.model_fields)
        return pd.DataFrame(rows, columns=cols)

    def label_sources(self) -> list[dict[str, Any]]:
        sql = """SELECT taxonomy, source_kind, source, COUNT(DISTINCT repo || '#' || issue_number) AS issues,
                        COUNT(*) AS labels FROM labels GROUP BY taxonomy, source_kind, source
                 ORDER BY taxonomy, source_kind, source"""
        return [self._row(r) for r in self._query(sql)]

    # -- helpers ---------------------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[list[str], tuple]]:
        cur = self.conn.execute(sql, params if isinstance(params, dict) else [_param(p) for p in params])
        names = [d[0] for d in cur.description]
        for row in cur:
            yield names, row

    @staticmethod
    def _row(named: tuple[list[str], tuple], json_cols: set[str] = frozenset()) -> dict[str, Any]:
        names, row = named
        out = dict(zip(names, row, strict=True))
        for col in json_cols & out.keys():
            out[col] = _loads(out[col])
        return out

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only SQL query and return rows as dicts (for notebooks and stages).
        A statement that would write is refused (SQLite's ``query_only``): the stages' own
        methods keep their tables consistent. Bad SQL is a one-line :class:`BadInputError`."""
        self.conn.execute("PRAGMA query_only = ON")
        try:
            return [self._row(r) for r in self._query(sql, params)]
        except sqlite3.Error as exc:
            shown = " ".join(sql.split())
            shown = shown if len(shown) <= 120 else shown[:120] + "…"
            why = "read-only: use the store's methods to change data" if "readonly" in str(exc) else str(exc)
            raise BadInputError(f"query {shown!r}: {why}") from None
        finally:
            self.conn.execute("PRAGMA query_only = OFF")


class RunHandle:
    """What a running command may add to its provenance record."""

    def __init__(self, run_id: int):
        self.id = run_id
        self.summary: dict[str, Any] = {}


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement knows about quotes)."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip() and not all(l.strip().startswith("--") or not l.strip() for l in buf.splitlines()):
        statements.append(buf.strip())
    return statements
