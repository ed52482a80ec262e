"""The diagnose search index: lexical (SQLite FTS5 BM25), exact error signatures, and semantic
(LSA: TF-IDF projected by a truncated SVD) over the issues of a study store.

Incremental: each issue's title and body are hashed; `build` re-parses and re-indexes only
issues that are new or changed, and drops issues no longer in the store. The LSA model is fitted
once on a seeded sample (at most ``fit_sample`` issues) and new issues are projected with it;
it is refitted only when the index has grown ``refit_growth``-fold. Vectors live in the store
(one float32 blob per issue) and in a ``.npy`` cache beside it that search memory-maps, so a
query costs one FTS5 query, one indexed signature lookup and one matrix-vector product.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bugatlas.diagnose.parse import ParsedLog, extract_log, load_patterns, parse_log
from bugatlas.errors import BadInputError
from bugatlas.files import load_yaml, replaced_when_complete
from bugatlas.store import Store
from bugatlas.store.store import now_iso


@lru_cache(maxsize=1)
def search_settings() -> dict[str, Any]:
    text = (resources.files("bugatlas.diagnose") / "search.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


# Tokens that are addresses or hashes (x7f3c9e416f20, a hex commit): unique, so "specific", but
# they say nothing about the failure.
_NOISE = re.compile(r"^(?:x[0-9a-f]{4,}|(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}|[a-z_]*\d{4,}\w*)$")


class Tokenizer:
    def __init__(self, settings: dict[str, Any] | None = None):
        s = settings or search_settings()
        self.rx = re.compile(s["token_pattern"])
        self.stop = frozenset(s["stopwords"])

    def __call__(self, text: str) -> list[str]:
        return [t for t in (m.lower() for m in self.rx.findall(text))
                if t not in self.stop and not _NOISE.match(t)]


# -- documents ----------------------------------------------------------------------------------
def content_hash(title: str | None, body: str | None) -> str:
    return hashlib.sha1(f"{title or ''}\0{body or ''}".encode()).hexdigest()


@dataclass
class Doc:
    repo: str
    number: int
    title: str
    body_head: str
    log: str
    parsed: ParsedLog

    def semantic_text(self, chars: int) -> str:
        return _semantic_text(self.title, self.parsed.search_text[:4000], self.fts_body, chars)

    @property
    def fts_body(self) -> str:
        return f"{self.body_head}\n{self.log}"


def _semantic_text(title: str | None, terms: str | None, fts_body: str | None, chars: int) -> str:
    # The parsed failure first (it is the most specific), then title, then body head and log.
    return f"{title or ''}\n{terms or ''}\n{fts_body or ''}"[:chars]


def make_doc(repo: str, number: int, title: str | None, body: str | None) -> Doc:
    s = search_settings()["lexical"]
    body = body or ""
    log = extract_log(body)
    parsed = parse_log(log) if log else ParsedLog(recognized=False)
    return Doc(repo, number, title or "", body[: s["body_chars"]], log[: s["log_chars"]], parsed)


# -- LSA model ----------------------------------------------------------------------------------
@dataclass
class LsaModel:
    version: int
    vocab: dict[str, int]
    idf: np.ndarray          # (V,)
    components: np.ndarray   # (k, V) float32
    df: np.ndarray           # document frequency in the fit sample
    n_fit: int

    def tfidf(self, texts: Sequence[str], tokenizer: Tokenizer):
        from scipy.sparse import csr_matrix

        indptr, indices, data = [0], [], []
        for text in texts:
            counts = Counter(self.vocab[t] for t in tokenizer(text) if t in self.vocab)
            if counts:
                idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
                w = (1.0 + np.log(tf)) * self.idf[idx]
                w /= np.linalg.norm(w) or 1.0
                indices.extend(idx.tolist())
                data.extend(w.tolist())
            indptr.append(len(indices))
        return csr_matrix(
            (np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr)),
            shape=(len(texts), len(self.vocab)),
        )

    def transform(self, texts: Sequence[str], tokenizer: Tokenizer) -> np.ndarray:
        x = self.tfidf(texts, tokenizer)
        v = np.asarray(x @ self.components.T, dtype=np.float32)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return v / norms

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        terms = sorted(self.vocab, key=self.vocab.get)
        np.savez(  # uncompressed: loading it is on the first query's path
            buf, terms=np.asarray(terms), idf=self.idf, components=self.components, df=self.df,
            n_fit=np.asarray([self.n_fit]),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, version: int, data: bytes) -> LsaModel:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        terms = [str(t) for t in z["terms"]]
        return cls(version, {t: i for i, t in enumerate(terms)}, z["idf"], z["components"],
                   z["df"], int(z["n_fit"][0]))


def fit_lsa(texts: Sequence[str], tokenizer: Tokenizer, version: int, seed: int = 0) -> LsaModel:
    from sklearn.utils.extmath import randomized_svd

    s = search_settings()["semantic"]
    n = len(texts)
    tokenized = [set(tokenizer(t)) for t in texts]
    df_all = Counter(t for toks in tokenized for t in toks)
    max_df = max(2, int(s["max_df"] * n))
    kept = [(t, c) for t, c in df_all.items() if s["min_df"] <= c <= max_df]
    kept.sort(key=lambda tc: (-tc[1], tc[0]))
    kept = kept[: s["max_features"]]
    vocab = {t: i for i, (t, _) in enumerate(sorted(kept))}
    df = np.zeros(len(vocab), np.float32)
    for t, c in kept:
        df[vocab[t]] = c
    idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
    model = LsaModel(version, vocab, idf, np.zeros((0, len(vocab)), np.float32), df, n)
    if n < 2 or len(vocab) < 2:  # a store too small to share terms: no semantic channel yet
        return model
    x = model.tfidf(texts, tokenizer)
    k = max(1, min(s["dimensions"], n - 1, len(vocab) - 1))
    _, _, vt = randomized_svd(x, n_components=k, n_iter=5, random_state=seed)
    model.components = vt.astype(np.float32)
    return model


# -- the index ----------------------------------------------------------------------------------
@dataclass
class BuildStats:
    issues: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    with_log: int = 0
    recognized: int = 0
    vectorized: int = 0
    refitted: bool = False
    model_version: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Hit:
    repo: str
    number: int
    doc_id: int
    score: float
    channels: dict[str, int] = field(default_factory=dict)  # channel -> rank (1-based)
    signature: str | None = None
    same_signature: bool = False


class SearchIndex:
    """The diagnose index of one store."""

    def __init__(self, store: Store):
        self.store = store
        self.settings = search_settings()
        self.tokenizer = Tokenizer(self.settings)
        self._model: LsaModel | None = None
        self._matrix: tuple[int, np.ndarray, np.ndarray] | None = None  # (generation, ids, vecs)

    # -- bookkeeping --------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.store.conn.execute("SELECT value FROM diagnose_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: Any) -> None:
        self.store.conn.execute(
            "INSERT INTO diagnose_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    @property
    def generation(self) -> int:
        return int(self._meta("generation") or 0)

    def model(self) -> LsaModel | None:
        # The version first: the blob (tens of MB) is read only when the model changed.
        version = self.store.conn.execute("SELECT MAX(version) FROM diagnose_model").fetchone()[0]
        if version is None:
            return None
        if self._model is None or self._model.version != version:
            data = self.store.conn.execute(
                "SELECT data FROM diagnose_model WHERE version = ?", (version,)
            ).fetchone()[0]
            self._model = LsaModel.from_bytes(version, data)
        return self._model

    def status(self) -> dict[str, Any]:
        conn = self.store.conn
        docs, logs, rec, vec = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(has_log),0), COALESCE(SUM(recognized),0), "
            "COUNT(vector) FROM diagnose_docs"
        ).fetchone()
        issues = self.store.count_issues(include_references=False)
        stale = self._count_stale()
        model = conn.execute(
            "SELECT version, fitted_at, n_docs, n_sample FROM diagnose_model ORDER BY version DESC LIMIT 1"
        ).fetchone()
        sigs = conn.execute(
            "SELECT COUNT(DISTINCT signature_key) FROM diagnose_docs WHERE signature_key IS NOT NULL"
        ).fetchone()[0]
        return {
            "issues_in_store": issues,
            "indexed": docs,
            "to_index": stale,
            "with_log": logs,
            "signature_parsed": rec,
            "distinct_signatures": sigs,
            "vectorized": vec,
            "model": None if model is None else dict(zip(("version", "fitted_at", "n_docs", "n_sample"), model, strict=True)),
            "generation": self.generation,
            "built_at": self._meta("built_at"),
            "up_to_date": stale == 0 and docs == issues and vec == docs,
        }

    def _count_stale(self) -> int:
        # New or changed issues, and indexed issues that left the store.
        issues = dict(self._issue_hashes())
        indexed = dict(self._indexed_hashes())
        changed = sum(1 for k, h in issues.items() if indexed.get(k, (None, None))[1] != h)
        return changed + sum(1 for k in indexed if k not in issues)

    def _issue_hashes(self) -> Iterable[tuple[tuple[str, int], str]]:
        cur = self.store.conn.execute(
            "SELECT repo, number, title, body FROM issues WHERE is_reference = 0 AND is_pull_request = 0"
        )
        for repo, number, title, body in cur:
            yield (repo, number), content_hash(title, body)

    def _indexed_hashes(self) -> Iterable[tuple[tuple[str, int], tuple[int, str]]]:
        for doc_id, repo, number, h in self.store.conn.execute(
            "SELECT doc_id, repo, number, content_hash FROM diagnose_docs"
        ):
            yield (repo, number), (doc_id, h)

    # -- build ----------------------------------------------------------------------------------
    def build(self, *, refit: bool = False, progress: bool = False, batch: int = 1000) -> BuildStats:
        """Index new and changed issues; drop removed ones; (re)fit or extend the LSA vectors.
        Commits every ``batch`` issues, so an interrupted build resumes where it stopped."""
        import time

        t0 = time.perf_counter()
        stats = BuildStats()
        conn = self.store.conn
        indexed = dict(self._indexed_hashes())
        current = dict(self._issue_hashes())
        stats.issues = len(current)
        todo = [k for k, h in current.items() if indexed.get(k, (None, None))[1] != h]
        stats.unchanged = len(current) - len(todo)
        gone = [doc_id for k, (doc_id, _) in indexed.items() if k not in current]
        changed_any = bool(todo or gone)
        with self.store.transaction():
            for doc_id in gone:
                self._delete_doc(doc_id)
        stats.removed = len(gone)

        model = self.model()
        sem = self.settings["semantic"]
        # After this build the index holds exactly the current issues; decide the refit now so
        # new issues are not vectorized with a model about to be replaced (and counted twice).
        n_after = len(current)
        need_fit = n_after > 0 and (
            refit or model is None or n_after >= sem["refit_growth"] * max(1, self._model_n_docs())
        )
        bar = _progress(progress)
        with bar:
            task = bar.add_task("index: parse and FTS", total=len(todo))
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                docs = [self._load_doc(k) for k in chunk]
                vecs = None
                if model is not None and not need_fit:
                    vecs = model.transform([d.semantic_text(self.settings["semantic"]["text_chars"]) for d in docs], self.tokenizer)
                with self.store.transaction():
                    for i, doc in enumerate(docs):
                        prior = indexed.get((doc.repo, doc.number))
                        self._write_doc(doc, current[(doc.repo, doc.number)], prior[0] if prior else None,
                                        None if vecs is None else vecs[i], None if model is None else model.version)
                        stats.with_log += bool(doc.log)
                        stats.recognized += doc.parsed.recognized
                    stats.vectorized += 0 if vecs is None else len(docs)
                bar.update(task, advance=len(chunk))
            stats.indexed = len(todo)

            n_docs = conn.execute("SELECT COUNT(*) FROM diagnose_docs").fetchone()[0]
            if need_fit and n_docs > 0:
                model = self._fit(n_docs)
                stats.refitted = True
                changed_any = True
            missing = [r[0] for r in conn.execute(
                "SELECT doc_id FROM diagnose_docs WHERE vector IS NULL OR model_version IS NOT ?",
                (None if model is None else model.version,),
            )]
            if missing and model is not None:
                task2 = bar.add_task("index: vectors", total=len(missing))
                for start in range(0, len(missing), batch * 5):
                    ids = missing[start : start + batch * 5]
                    texts = self._semantic_texts(ids)
                    vecs = model.transform(texts, self.tokenizer)
                    with self.store.transaction():
                        conn.executemany(
                            "UPDATE diagnose_docs SET vector = ?, model_version = ? WHERE doc_id = ?",
                            [(vecs[i].tobytes(), model.version, d) for i, d in enumerate(ids)],
                        )
                    stats.vectorized += len(ids)
                    bar.update(task2, advance=len(ids))
                changed_any = True
        with self.store.transaction():
            if changed_any or self._meta("generation") is None:
                self._set_meta("generation", self.generation + 1)
            self._set_meta("built_at", now_iso())
            self._set_meta("issues_mark", self._issues_mark())
        stats.model_version = None if model is None else model.version
        self._write_cache()
        stats.seconds = round(time.perf_counter() - t0, 3)
        return stats

    def _model_n_docs(self) -> int:
        row = self.store.conn.execute(
            "SELECT n_docs FROM diagnose_model ORDER BY version DESC LIMIT 1"
        ).fetchone()
        return int(row[0]) if row else 0

    def _load_doc(self, key: tuple[str, int]) -> Doc:
        title, body = self.store.conn.execute(
            "SELECT title, body FROM issues WHERE repo = ? AND number = ?", key
        ).fetchone()
        return make_doc(key[0], key[1], title, body)

    def _delete_doc(self, doc_id: int) -> None:
        conn = self.store.conn
        conn.execute("DELETE FROM diagnose_fts WHERE rowid = ?", (doc_id,))
        conn.execute("DELETE FROM diagnose_signatures WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM diagnose_docs WHERE doc_id = ?", (doc_id,))

    def _write_doc(self, doc: Doc, chash: str, doc_id: int | None, vec: np.ndarray | None,
                   model_version: int | None) -> None:
        conn = self.store.conn
        p = doc.parsed
        if doc_id is not None:
            self._delete_doc(doc_id)
        values = (doc.repo, doc.number, chash, int(bool(doc.log)), int(p.recognized), p.family,
                  p.exception_type, p.signature, p.signature_key, p.engine, p.component,
                  orjson.dumps(p.versions).decode(), p.search_text[:4000],
                  None if vec is None else vec.astype(np.float32).tobytes(),
                  model_version if vec is not None else None, now_iso())  # fmt: skip
        cols = ("repo, number, content_hash, has_log, recognized, family, exception_type, signature, "
                "signature_key, engine, component, versions, search_terms, vector, model_version, indexed_at")
        if doc_id is not None:
            conn.execute(f"INSERT INTO diagnose_docs (doc_id, {cols}) VALUES (?, {', '.join('?' * 16)})", (doc_id, *values))
        else:
            doc_id = conn.execute(f"INSERT INTO diagnose_docs ({cols}) VALUES ({', '.join('?' * 16)})", values).lastrowid
        sig_text = " ".join(filter(None, [p.signature, *p.secondary_signatures, p.search_text]))
        conn.execute(
            "INSERT INTO diagnose_fts (rowid, title, body, signature) VALUES (?, ?, ?, ?)",
            (doc_id, doc.title, doc.fts_body, sig_text),
        )
        keys = []
        if p.signature_key:
            keys.append((p.signature_key, doc_id, 1))
        from bugatlas.diagnose.parse import signature_key

        for s in p.secondary_signatures:
            k = signature_key(s)
            if k != p.signature_key and k not in {x[0] for x in keys}:
                keys.append((k, doc_id, 0))
        conn.executemany("INSERT OR IGNORE INTO diagnose_signatures VALUES (?, ?, ?)", keys)

    def _semantic_texts(self, doc_ids: Sequence[int]) -> list[str]:
        """The text each issue is embedded from, rebuilt from what the index stores (title, parsed
        terms, and the FTS body column: the head of the body plus its extracted log), so
        vectorizing never re-parses."""
        chars = self.settings["semantic"]["text_chars"]
        out = []
        for doc_id in doc_ids:
            title, terms, fts_body = self.store.conn.execute(
                "SELECT f.title, d.search_terms, f.body FROM diagnose_docs d JOIN diagnose_fts f "
                "ON f.rowid = d.doc_id WHERE d.doc_id = ?", (doc_id,)
            ).fetchone()
            out.append(_semantic_text(title, terms, fts_body, chars))
        return out

    def _fit(self, n_docs: int) -> LsaModel:
        import random

        sem = self.settings["semantic"]
        ids = [r[0] for r in self.store.conn.execute("SELECT doc_id FROM diagnose_docs ORDER BY doc_id")]
        if len(ids) > sem["fit_sample"]:
            ids = sorted(random.Random(0).sample(ids, sem["fit_sample"]))
        version = (self.store.conn.execute("SELECT MAX(version) FROM diagnose_model").fetchone()[0] or 0) + 1
        model = fit_lsa(self._semantic_texts(ids), self.tokenizer, version)
        with self.store.transaction():
            self.store.conn.execute(
                "INSERT INTO diagnose_model VALUES (?, ?, ?, ?, ?)",
                (version, now_iso(), n_docs, len(ids), model.to_bytes()),
            )
            self.store.conn.execute("DELETE FROM diagnose_model WHERE version < ?", (version,))
        self._model = model
        return model

    # -- vector cache ---------------------------------------------------------------------------
    def _cache_paths(self, generation: int) -> tuple[Path, Path] | None:
        path = Path(self.store.path)
        if str(path) == ":memory:":
            return None
        base = path.with_name(f"{path.name}.diagnose-g{generation}")
        return base.with_suffix(base.suffix + ".vectors.npy"), base.with_suffix(base.suffix + ".ids.npy")

    def _write_cache(self) -> None:
        gen = self.generation
        ids, vecs = self._matrix_from_store()
        self._matrix = (gen, ids, vecs)
        paths = self._cache_paths(gen)
        if paths is None:
            return
        try:
            for old in Path(self.store.path).parent.glob(f"{Path(self.store.path).name}.diagnose-g*.npy"):
                if f"-g{gen}." not in old.name:
                    old.unlink(missing_ok=True)
            # each file renamed into place when complete: an interrupted write leaves no half
            # file under the name `matrix()` loads
            for final, arr in ((paths[0], vecs), (paths[1], ids)):
                with replaced_when_complete(final, option="index cache") as fh:
                    np.save(fh, arr)
        except (OSError, BadInputError):  # read-only folder: search falls back to reading the store
            pass

    def _matrix_from_store(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.store.conn.execute(
            "SELECT doc_id, vector FROM diagnose_docs WHERE vector IS NOT NULL ORDER BY doc_id"
        ).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 1), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, vecs

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        gen = self.generation
        if self._matrix is not None and self._matrix[0] == gen:
            return self._matrix[1], self._matrix[2]
        paths = self._cache_paths(gen)
        if paths is not None and paths[0].exists() and paths[1].exists():
            vecs = np.load(paths[0], mmap_mode="r")
            ids = np.load(paths[1])
        else:
            ids, vecs = self._matrix_from_store()
        self._matrix = (gen, ids, vecs)
        return ids, vecs

    # -- search ---------------------------------------------------------------------------------
    def _issues_mark(self) -> str:
        # Cheap fingerprint of the issues table (max rowid, count): changes when issues are added.
        row = self.store.conn.execute("SELECT MAX(rowid), COUNT(*) FROM issues").fetchone()
        return f"{row[0]}:{row[1]}"

    def is_current(self) -> bool:
        """False when issues were added or removed since the last build (checked in O(1)-ish;
        `status` does the full per-issue comparison, including edited issues)."""
        return self._meta("issues_mark") == self._issues_mark()

    def is_built(self) -> bool:
        return self.store.conn.execute("SELECT 1 FROM diagnose_docs LIMIT 1").fetchone() is not None

    def search(self, parsed: ParsedLog, text: str, *, k: int = 5,
               exclude: Iterable[int] = ()) -> list[Hit]:
        """Most similar indexed issues to a parsed log (hybrid, reciprocal rank fusion)."""
        fusion = self.settings["fusion"]
        depth = int(fusion["depth"])
        excluded = set(exclude)
        lexical = self.lexical_channel(parsed, text, depth, excluded)
        semantic = self.semantic_channel(parsed, text, depth, excluded)
        # Among issues with the same signature, the ones also close in text come first.
        other = {}
        for ranked in (lexical, semantic):
            for rank, doc_id in enumerate(ranked, 1):
                other[doc_id] = min(other.get(doc_id, depth + 1), rank)
        signature = self.signature_channel(parsed, depth, excluded, order=other)
        channels = {"signature": signature, "lexical": lexical, "semantic": semantic}
        scores: dict[int, float] = {}
        ranks: dict[int, dict[str, int]] = {}
        for name, ranked in channels.items():
            w = float(fusion["weights"][name])
            for rank, doc_id in enumerate(ranked, 1):
                scores[doc_id] = scores.get(doc_id, 0.0) + w / (fusion["k"] + rank)
                ranks.setdefault(doc_id, {})[name] = rank
        best = sorted(scores, key=lambda d: (-scores[d], d))[:k]
        hits = []
        for doc_id in best:
            repo, number, sig, skey = self.store.conn.execute(
                "SELECT repo, number, signature, signature_key FROM diagnose_docs WHERE doc_id = ?", (doc_id,)
            ).fetchone()
            hits.append(Hit(repo, number, doc_id, round(scores[doc_id], 6), ranks[doc_id], sig,
                            bool(parsed.signature_key) and skey == parsed.signature_key))
        return hits

    def signature_channel(self, parsed: ParsedLog, depth: int, excluded: set[int],
                          order: dict[int, int] | None = None) -> list[int]:
        """Issues sharing the log's signature: those whose main failure it is first, then those
        that also show it; within each, by ``order`` (best rank elsewhere), then newest."""
        if not parsed.signature_key:
            return []
        from bugatlas.diagnose.parse import signature_key

        order = order or {}
        keys = [parsed.signature_key] + [signature_key(s) for s in parsed.secondary_signatures]
        out: list[int] = []
        seen: set[int] = set()
        for i, key in enumerate(keys):
            rows = self.store.conn.execute(
                "SELECT doc_id, is_primary FROM diagnose_signatures WHERE signature_key = ?", (key,)
            ).fetchall()
            rows.sort(key=lambda r: (-r[1], order.get(r[0], 1 << 30), -r[0]))
            for doc_id, _ in rows:
                if doc_id not in excluded and doc_id not in seen:
                    out.append(doc_id)
                    seen.add(doc_id)
            if i == 0 and len(out) >= depth:
                break
        return out[:depth]

    def query_terms(self, parsed: ParsedLog, text: str) -> list[str]:
        lex = self.settings["lexical"]
        model = self.model()
        counts = Counter(self.tokenizer(parsed.search_text) * 3 + self.tokenizer(text[:20000]))
        n = model.n_fit if model else 0
        scored = []
        for term, tf in counts.items():
            if model is not None and term in model.vocab:
                df = float(model.df[model.vocab[term]])
                if n and df / n > lex["max_df"]:
                    continue
                idf = float(model.idf[model.vocab[term]])
            else:
                idf = 1.0 if model is None else float(np.log(1 + n)) * 0.8  # unseen: rare but maybe noise
            scored.append((idf * (1 + np.log(tf)), term))
        scored.sort(reverse=True)
        return [t for _, t in scored[: lex["max_terms"]]]

    def lexical_channel(self, parsed: ParsedLog, text: str, depth: int, excluded: set[int]) -> list[int]:
        terms = self.query_terms(parsed, text)
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        w = self.settings["lexical"]["column_weights"]
        rows = self.store.conn.execute(
            f"SELECT rowid FROM diagnose_fts WHERE diagnose_fts MATCH ? "
            f"ORDER BY bm25(diagnose_fts, {float(w[0])}, {float(w[1])}, {float(w[2])}) LIMIT ?",
            (match, depth + len(excluded)),
        ).fetchall()
        return [r[0] for r in rows if r[0] not in excluded][:depth]

    def semantic_channel(self, parsed: ParsedLog, text: str, depth: int, excluded: set[int]) -> list[int]:
        model = self.model()
        if model is None:
            return []
        ids, vecs = self.matrix()
        if len(ids) == 0:
            return []
        chars = self.settings["semantic"]["text_chars"]
        q = model.transform([f"{parsed.search_text}\n{text[:chars]}"[:chars]], self.tokenizer)[0]
        if not q.any():
            return []
        sims = vecs @ q
        top = min(len(ids), depth + len(excluded))
        idx = np.argpartition(-sims, top - 1)[:top]
        idx = idx[np.argsort(-sims[idx])]
        return [int(ids[i]) for i in idx if int(ids[i]) not in excluded and sims[i] > 0][:depth]

    def doc_id(self, repo: str, number: int) -> int | None:
        row = self.store.conn.execute(
            "SELECT doc_id FROM diagnose_docs WHERE repo = ? AND number = ?", (repo.lower(), number)
        ).fetchone()
        return row[0] if row else None


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not enabled, transient=False,
    )


def load_pattern_families() -> list[str]:
    return [f["id"] for f in load_patterns().families]
