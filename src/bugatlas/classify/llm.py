"""An LLM labeler for any OpenAI-compatible endpoint (vLLM, llama.cpp's server, Ollama,
hosted APIs): the codebook goes into the prompt, the answer is constrained by a JSON schema
(``response_format`` ``json_schema``; servers that only know ``json_object`` with a schema
are detected and served that form), validated again here, cached by a hash of the request
(in the store, or in batch mode in a small SQLite file beside the output), and retried a
bounded number of times on invalid JSON, 5xx answers and timeouts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bugatlas.classify.base import (
    DEFAULT_THRESHOLD,
    DimScores,
    LabelSet,
    Prediction,
    Threshold,
    normalize,
    predictions_from_scores,
)
from bugatlas.classify.schema import TaxonomySpec, taxonomy_spec
from bugatlas.classify.text import issue_doc
from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.store import Store
from bugatlas.store.records import Issue
from bugatlas.store.store import now_iso

PROMPT_VERSION = "1"
TOP_LOGPROBS = 20  # alternatives per token asked for (OpenAI's and vLLM's default maximum)
VALUE_CONFIDENCE = "_value_confidence"  # key of the log-probability confidences in a kept answer


class LLMError(BugAtlasError):
    """The endpoint failed or kept answering outside the schema after the retries."""


class AnswerCache:
    """Validated answers by request hash in a SQLite file of their own: batch mode has no store,
    and without a cache a batch the endpoint failed on at issue 2,500 asked all 2,500 again.
    Each answer is committed as it arrives, so an interrupted or failed run resumes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._new = not self.path.exists()  # an unused new cache is removed at close
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None)
            self.conn.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                              "response TEXT NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID")
        except sqlite3.Error as exc:
            raise BadInputError(f"LLM answer cache {self.path}: cannot use it as a SQLite file ({exc}); "
                                "choose another with --llm-cache") from None

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            row = self.conn.execute("SELECT response FROM answers WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return orjson.loads(row[0]) if row else None

    def put(self, key: str, model: str, answer: dict[str, Any]) -> None:
        try:
            self.conn.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)",
                              (key, model, orjson.dumps(answer).decode(), now_iso()))
        except sqlite3.Error as exc:  # locked by another process, read-only, disk full
            raise self._error("cannot write", exc) from None

    def _error(self, what: str, exc: sqlite3.Error) -> BadInputError:
        return BadInputError(f"LLM answer cache {self.path}: {what} it ({exc}); the answers stored so far are "
                             "kept: run again, or choose another file with --llm-cache")

    def close(self) -> None:
        try:
            empty = self._new and self.conn.execute("SELECT 1 FROM answers LIMIT 1").fetchone() is None
        except sqlite3.Error:
            empty = False
        self.conn.close()
        if empty:  # a run stopped by a usage error, or one that asked nothing: leave no file behind
            self.path.unlink(missing_ok=True)


def response_schema(spec: TaxonomySpec) -> dict[str, Any]:
    """JSON schema of an answer: per dimension the leaf names (enum), a confidence per
    dimension and a short quote of the issue as evidence."""
    props: dict[str, Any] = {}
    for dim, dspec in spec.dims.items():
        enum = {"type": "string", "enum": list(dspec.leaves)}
        props[dim] = ({"type": "array", "items": enum, "minItems": 1, "maxItems": dspec.max_labels}
                      if dspec.multi_label else enum)
    props["confidence"] = {"type": "number", "minimum": 0, "maximum": 1}
    props["evidence"] = {"type": "string", "maxLength": 300}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def parse_answer(content: str) -> Any:
    """The answer's JSON. Raw newlines and tabs inside strings (JSON wants them escaped) are
    read as they are: llama.cpp's grammar lets a model put them in its evidence quote, and
    gemma3-270m did so in 10 of 60 development-set answers, each otherwise valid and each
    asked again in vain (the same answer comes back at temperature 0)."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content, strict=False)  # a ValueError again when it is not JSON at all


def validate(spec: TaxonomySpec, answer: Any) -> dict[str, Any]:
    """The answer if it fits the schema, else ValueError naming what is wrong."""
    if not isinstance(answer, dict):
        raise ValueError("answer is not a JSON object")
    for dim, dspec in spec.dims.items():
        if dim not in answer:
            raise ValueError(f"missing {dim!r}")
        vals = answer[dim] if isinstance(answer[dim], list) else [answer[dim]]
        if not vals or not all(isinstance(v, str) for v in vals):
            raise ValueError(f"{dim!r} must name categories")
        bad = [v for v in vals if v not in dspec.leaves]
        if bad:
            raise ValueError(f"{dim!r}: unknown categories {bad}")
    conf = answer.get("confidence")
    if not isinstance(conf, int | float) or not 0 <= conf <= 1:
        raise ValueError("'confidence' must be a number in [0, 1]")
    if not isinstance(answer.get("evidence", ""), str):
        raise ValueError("'evidence' must be a string")
    return answer


def value_confidences(spec: TaxonomySpec, content: str, tokens: Any) -> dict[str, dict[str, float]] | None:
    """How sure the model was of each category it named, from the tokens' log-probabilities
    (``logprobs.content`` of an OpenAI-style answer): per token of the name, the chosen token's
    probability over the alternatives that still spell a category of that dimension, multiplied
    along the name. Renormalizing matters: servers report the model's probabilities before the
    schema's grammar removed the tokens it forbids. None when the tokens do not spell
    ``content`` (the server sent none, or split characters across tokens) or are malformed:
    the answer itself stands either way."""
    try:
        return _value_confidences(spec, content, tokens)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None


def _value_confidences(spec: TaxonomySpec, content: str, tokens: Any) -> dict[str, dict[str, float]] | None:
    if not isinstance(tokens, list) or not tokens:
        return None
    pieces = [str(t["token"]) for t in tokens]
    if "".join(pieces) != content:
        return None
    starts, pos = [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
    out: dict[str, dict[str, float]] = {}
    for dim, dspec in spec.dims.items():
        leaves = set(dspec.leaves)
        out[dim] = {}
        for begin, end in _string_values(content, dim):
            name = content[begin:end]
            if name not in leaves:
                continue
            conf = 1.0
            for i, (tok, at) in enumerate(zip(pieces, starts, strict=True)):
                if at + len(tok) <= begin or at > end:  # outside the name and its closing quote
                    continue
                lead = content[at:begin] if at < begin else ""  # e.g. the opening quote
                spelled = content[begin:at] if at > begin else ""
                alts = {str(a.get("token")): float(a.get("logprob", -1e9))
                        for a in (tokens[i].get("top_logprobs") or []) if isinstance(a, dict)}
                alts[tok] = float(tokens[i].get("logprob", 0.0))
                valid = [lp for alt, lp in alts.items()
                         if alt.startswith(lead) and _spells(spelled + alt[len(lead):], leaves)]
                total = sum(math.exp(lp) for lp in valid)
                if total > 0:
                    conf *= math.exp(alts[tok]) / total
            out[dim][name] = max(out[dim].get(name, 0.0), conf)
    return out


def _spells(text: str, leaves: set[str]) -> bool:
    """Whether ``text`` (a category name so far, perhaps with its closing quote and what follows)
    can still be a name of ``leaves``."""
    if '"' in text:
        return text[: text.index('"')] in leaves
    return any(leaf.startswith(text) for leaf in leaves)


def _string_values(content: str, key: str) -> list[tuple[int, int]]:
    """Offsets (start, end) of the string value of ``key``, or of each string of its list, in a
    JSON object's text; names with escapes are skipped (category names have none)."""
    m = re.search(rf'"{re.escape(key)}"\s*:\s*', content)
    if m is None:
        return []
    spans, i = [], m.end()
    in_list = i < len(content) and content[i] == "["
    i += in_list
    while i < len(content):
        while i < len(content) and content[i] in " \t\r\n,":
            i += 1
        if i >= len(content) or content[i] != '"':
            break
        close = content.find('"', i + 1)
        if close < 0:
            break
        if "\\" not in content[i + 1 : close]:
            spans.append((i + 1, close))
        i = close + 1
        if not in_list:
            break
    return spans


def build_messages(spec: TaxonomySpec, issue: Issue, *, body_chars: int = 3000,
                   definitions: bool = True) -> list[dict[str, str]]:
    """The prompt: the codebook (names, with their definitions unless ``definitions`` is
    False, for small-context models) and the issue's title and body."""
    lines = [f"You label GitHub issues of LLM inference engines with the {spec.name} codebook.",
             "Answer with JSON only. For each dimension choose from these categories:"]
    for dim, dspec in spec.dims.items():
        kind = "one or two" if dspec.multi_label else "exactly one"
        lines.append(f"\n{dim} ({kind}):")
        for leaf in dspec.leaves:
            if definitions:
                cat = spec.codebook.dimensions[dim].find(leaf) if spec.codebook is not None else None
                desc = " ".join(((getattr(cat, "definition", "") or "") if cat else "").split())[:160]
                lines.append(f"- {leaf}: {desc}" if desc else f"- {leaf}")
            else:
                lines.append(f"- {leaf}")
    lines.append("\nAlso give 'confidence' (0-1) and 'evidence': a short quote from the issue.")
    doc = issue_doc(issue)
    body = (doc.prose + "\n" + doc.log)[:body_chars]
    user = f"Title: {doc.title}\n\n{body}"
    return [{"role": "system", "content": "\n".join(lines)}, {"role": "user", "content": user}]


class LLMLabeler:
    source_kind = "llm"

    def __init__(
        self,
        taxonomy: str,
        url: str,
        model: str,
        *,
        store: Store | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_tokens: int = 400,
        temperature: float = 0.0,
        client: httpx.Client | None = None,
        response_format: str = "auto",
        definitions: bool = True,
        body_chars: int = 3000,
        cache_file: str | Path | None = None,
        logprobs: bool = True,
    ):
        self.spec = taxonomy_spec(taxonomy)
        base = url.rstrip("/")
        self.endpoint = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        try:  # a typo is a usage error now, not retries with backoff on every issue
            parsed = httpx.URL(self.endpoint)
        except httpx.InvalidURL as exc:
            raise BadInputError(f"--llm-url {url}: not a URL ({exc})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise BadInputError(f"--llm-url {url}: not an http:// or https:// URL with a host "
                                "(e.g. http://127.0.0.1:8080/v1)")
        if response_format not in ("auto", "json_schema", "json_object"):  # before the cache file is made
            raise BadInputError(f"--llm-format {response_format}: must be auto, json_schema or json_object")
        self.model = model
        self.store = store
        # answers outside a store (batch mode): kept in this file when given, else in memory only
        self.cache_file = AnswerCache(cache_file) if cache_file is not None and store is None else None
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=timeout, headers=headers)
        self.schema = response_schema(self.spec)
        # auto: json_schema (OpenAI, vLLM, llama.cpp's own server), json_object+schema if rejected
        self.format_mode = "json_object" if response_format == "json_object" else "json_schema"
        self.auto_format = response_format == "auto"
        self.logprobs = logprobs  # asked for until the server rejects them
        self.definitions = definitions
        self.body_chars = body_chars
        self.name = f"llm:{model}"
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0}
        self._memory: dict[str, dict[str, Any]] = {}

    @property
    def version(self) -> str:
        return f"llm-{self.model}-p{PROMPT_VERSION}"

    def fit(self, issues: Sequence[Issue], labels: Sequence[LabelSet | None] | None = None) -> LLMLabeler:
        return self  # zero-shot: the codebook is the prompt

    # -- transport -------------------------------------------------------------------------
    def _body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        if self.format_mode == "json_schema":
            fmt = {"type": "json_schema",
                   "json_schema": {"name": "labels", "strict": True, "schema": self.schema}}
        else:
            fmt = {"type": "json_object", "schema": self.schema}
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "response_format": fmt}
        if self.logprobs:  # the confidences (see value_confidences)
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        return body

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        payload = orjson.dumps({"model": self.model, "messages": messages, "schema": self.schema,
                                "prompt": PROMPT_VERSION}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()

    def _cached(self, key: str) -> dict[str, Any] | None:
        if key in self._memory:
            return self._memory[key]
        if self.cache_file is not None:
            return self.cache_file.get(key)
        if self.store is None:
            return None
        row = self.store.conn.execute("SELECT response FROM classify_llm_cache WHERE key = ?", (key,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def _remember(self, key: str, answer: dict[str, Any]) -> None:
        self._memory[key] = answer
        if self.cache_file is not None:
            self.cache_file.put(key, self.model, answer)
        if self.store is not None:
            with self.store.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO classify_llm_cache VALUES (?, ?, ?, ?)",
                             (key, self.model, orjson.dumps(answer).decode(), now_iso()))

    def ask(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """The validated answer to ``messages`` (from the cache when asked before)."""
        key = self.cache_key(messages)
        cached = self._cached(key)
        if cached is not None:
            self.stats["cache_hits"] += 1
            return cached
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            choice = None
            try:
                self.stats["requests"] += 1
                resp = self.client.post(self.endpoint, json=self._body(messages))
            except httpx.TimeoutException:
                last = "timed out"
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({exc})"
                continue
            if (resp.status_code >= 400 and self.format_mode == "json_schema" and self.auto_format
                    and "response_format" in resp.text):
                # llama-cpp-python takes a schema only as {"type": "json_object", "schema": ...}
                # (and rejects json_schema with a 500): switch once, not counted as a retry
                self.format_mode = "json_object"
                self.auto_format = False
                return self.ask(messages)
            if resp.status_code == 400 and self.logprobs and "logprob" in resp.text:
                # a server without log-probabilities: the model's own confidence is used instead
                self.logprobs = False
                return self.ask(messages)
            if resp.status_code >= 500 or resp.status_code == 429:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise LLMError(f"{self.endpoint}: HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                choice = resp.json()["choices"][0]
                content = choice["message"]["content"]
                answer = validate(self.spec, parse_answer(content))
                sure = value_confidences(self.spec, content, (choice.get("logprobs") or {}).get("content"))
            except (KeyError, IndexError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
                last = f"invalid answer ({' '.join(str(exc).split())[:120]})"
                if isinstance(choice, dict) and choice.get("finish_reason") == "length":
                    # cut off by max_tokens: asking again gets the same cut-off answer
                    raise LLMError(f"{self.endpoint}: the answer was cut off at max_tokens {self.max_tokens} "
                                   f"(raise --llm-max-tokens): {last}") from None
                continue
            if sure is not None:  # kept with the answer (and its cache entry), outside the schema
                answer = {**answer, VALUE_CONFIDENCE: sure}
            self._remember(key, answer)
            return answer
        raise LLMError(f"{self.endpoint}: no valid answer after {self.retries + 1} attempts: {last}")

    # -- classifier shape ------------------------------------------------------------------
    def label(self, issue: Issue) -> dict[str, DimScores]:
        answer = self.ask(build_messages(self.spec, issue, definitions=self.definitions,
                                         body_chars=self.body_chars))
        # without log-probabilities, the model's own confidence mapped into [0.5, 1]: the named
        # categories always come first (small models often answer confidence 0 while naming one)
        stated = 0.5 + 0.5 * float(answer["confidence"])
        sure = answer.get(VALUE_CONFIDENCE) or {}
        quote = quoted(str(answer.get("evidence") or ""), issue)
        out = {}
        for dim, dspec in self.spec.dims.items():
            chosen = answer[dim] if isinstance(answer[dim], list) else [answer[dim]]
            chosen = list(dict.fromkeys(chosen))
            conf = {leaf: max(float(sure.get(dim, {}).get(leaf, stated)), 1e-6) for leaf in chosen}
            top = max(conf.values())
            # the rest shared evenly, unless a share would put an unnamed category above a named
            # one (among 28 root causes, 0.98 / 27 exceeds a named one's 0.02)
            rest = (1.0 - top) / max(len(dspec.leaves) - len(chosen), 1)
            if rest >= min(conf.values()):
                rest = 0.5 * min(conf.values())
            probs = normalize({leaf: conf.get(leaf, rest) for leaf in dspec.leaves})
            ev = {leaf: [f"llm: {quote}"] if quote else [f"llm: {self.model}"] for leaf in chosen}
            out[dim] = DimScores(probs=probs, evidence=ev, strength=top)
        return out

    def score(self, issues: Sequence[Issue]) -> list[dict[str, DimScores]]:
        return [self.label(i) for i in issues]

    def predict(self, issues: Sequence[Issue], *, threshold: Threshold = DEFAULT_THRESHOLD) -> list[Prediction]:
        return predictions_from_scores(self.spec, issues, self.score(issues), self.source_kind,
                                       threshold=threshold)

    def close(self) -> None:
        self.client.close()
        if self.cache_file is not None:
            self.cache_file.close()


def quoted(quote: str, issue: Issue) -> str:
    """The model's evidence quote when it is words of the issue, else "" (the label then names
    the model instead): small models answer "]:[" or paraphrase, which explains nothing."""
    words = " ".join(quote.split())
    if not any(c.isalnum() for c in words):
        return ""
    text = " ".join(f"{issue.title or ''} {issue.body or ''}".split()).lower()
    return words if words.lower() in text else ""
