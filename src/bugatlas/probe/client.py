"""A small OpenAI-compatible client for probing: every request has a timeout, streams are read
raw (so SSE framing itself can be judged), and the engine's tokenizer extras are discovered.

It deliberately does not use the ``openai`` package: the probe must see exactly what the server
sent (status codes, malformed frames, a missing ``[DONE]``) rather than what a client library
repaired or raised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


class ServerTimeout(Exception):
    """The server did not answer (or finish a stream) within the probe's timeout."""


class ServerUnreachable(Exception):
    """The connection was refused or dropped: the server is down or crashed mid-request."""


@dataclass
class Reply:
    """One HTTP exchange as the probe saw it."""

    status: int
    body: Any  # parsed JSON, or the raw text when the body is not JSON
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_message(self) -> str:
        """The server's error text, wherever the engine put it (OpenAI, FastAPI, plain)."""
        b = self.body
        if isinstance(b, dict):
            err = b.get("error", b.get("detail", b.get("message")))
            if isinstance(err, dict):
                return str(err.get("message") or err)
            if isinstance(err, list):  # FastAPI validation errors
                return "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in err)
            if err is not None:
                return str(err)
            return orjson.dumps(b).decode()[:300]
        return str(b or "")[:300]


@dataclass
class StreamReply:
    """A streamed answer: the raw SSE lines and the JSON events parsed leniently from them."""

    status: int
    raw: str
    events: list[dict[str, Any]]
    done: bool  # a `data: [DONE]` line arrived
    ttft: float | None  # seconds until the first content-bearing event
    elapsed: float
    error_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def text(self, index: int = 0) -> str:
        parts = []
        for ev in self.events:
            for ch in ev.get("choices") or []:
                if ch.get("index", 0) != index:
                    continue
                if "text" in ch and ch["text"] is not None:
                    parts.append(ch["text"])
                delta = ch.get("delta") or {}
                if delta.get("content"):
                    parts.append(delta["content"])
        return "".join(parts)

    def finish_reason(self, index: int = 0) -> str | None:
        reason = None
        for ev in self.events:
            for ch in ev.get("choices") or []:
                if ch.get("index", 0) == index and ch.get("finish_reason"):
                    reason = ch["finish_reason"]
        return reason


def choice_text(body: dict[str, Any], index: int = 0) -> str:
    """The text of choice ``index`` of a completion or chat completion body."""
    choice = body["choices"][index]
    if "message" in choice:
        return (choice["message"] or {}).get("content") or ""
    return choice.get("text") or ""


@dataclass
class Tokenizer:
    """The engine's own tokenizer, reached through its extra endpoints."""

    client: ProbeClient
    flavor: str  # llama-cpp-python | llama.cpp | vllm
    overhead: int = 0  # tokens the endpoint adds to any text (BOS), learned from ""

    def encode(self, text: str) -> list[int]:
        if self.flavor == "llama-cpp-python":
            r = self.client.post_root("/extras/tokenize", {"input": text, "model": self.client.model})
        elif self.flavor == "llama.cpp":
            r = self.client.post_root("/tokenize", {"content": text, "add_special": False})
        else:
            r = self.client.post_root(
                "/tokenize", {"model": self.client.model, "prompt": text, "add_special_tokens": False}
            )
        if not r.ok or not isinstance(r.body, dict) or "tokens" not in r.body:
            raise RuntimeError(f"tokenize failed: HTTP {r.status} {r.error_message()}")
        toks = r.body["tokens"]
        return [t if isinstance(t, int) else t.get("id") for t in toks]

    def decode(self, tokens: list[int]) -> str:
        if self.flavor == "llama-cpp-python":
            r = self.client.post_root("/extras/detokenize", {"tokens": tokens, "model": self.client.model})
            key = "text"
        elif self.flavor == "llama.cpp":
            r = self.client.post_root("/detokenize", {"tokens": tokens})
            key = "content"
        else:
            r = self.client.post_root("/detokenize", {"model": self.client.model, "tokens": tokens})
            key = "prompt"
        if not r.ok or not isinstance(r.body, dict) or key not in r.body:
            raise RuntimeError(f"detokenize failed: HTTP {r.status} {r.error_message()}")
        return r.body[key]

    def count(self, text: str) -> int:
        return len(self.encode(text)) - self.overhead


class ProbeClient:
    """HTTP access to one OpenAI-compatible server under test."""

    def __init__(self, base_url: str, *, model: str | None = None, timeout: float = 60.0,
                 max_connections: int = 64, record: list[dict[str, Any]] | None = None):  # fmt: skip
        self.base_url = base_url.rstrip("/")
        # Engines serve their extras (tokenize, health, version) beside /v1, not under it.
        self.root_url = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self.timeout = timeout
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self.model = model
        self.requests = 0
        self.record = record  # when a list: every request is appended (the overhead benchmark replays them)
        self._tokenizer: Tokenizer | None | bool = False  # False: not yet discovered

    def close(self) -> None:
        self.http.close()

    # -- raw exchanges ---------------------------------------------------------------------
    def request(self, method: str, url: str, *, json: Any = None, content: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> Reply:  # fmt: skip
        self.requests += 1
        if json is not None:
            content = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        if self.record is not None:
            self.record.append({"method": method, "url": url, "content": content, "stream": False})
        limit = timeout if timeout is not None else self.timeout
        t0 = time.perf_counter()
        try:
            with self.http.stream(method, url, content=content, headers=headers, timeout=limit) as resp:
                raw = _read_within(resp, t0, limit, f"{method} {url}")
        except httpx.TimeoutException as exc:
            raise ServerTimeout(f"{method} {url}: no answer within {limit:g}s") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ServerUnreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter() - t0
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(resp.encoding or "utf-8", "replace")
        return Reply(resp.status_code, body, elapsed, dict(resp.headers))

    def post(self, path: str, payload: Any, **kw: Any) -> Reply:
        return self.request("POST", self.base_url + path, json=payload, **kw)

    def post_root(self, path: str, payload: Any, **kw: Any) -> Reply:
        return self.request("POST", self.root_url + path, json=payload, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", self.base_url + path, **kw)

    def stream(self, path: str, payload: dict[str, Any], *, timeout: float | None = None) -> StreamReply:
        """POST with ``stream: true`` and read the SSE body line by line within one deadline."""
        self.requests += 1
        limit = timeout if timeout is not None else self.timeout
        payload = {**payload, "stream": True}
        if self.record is not None:
            self.record.append({"method": "POST", "url": self.base_url + path,
                                "content": orjson.dumps(payload), "stream": True})  # fmt: skip
        t0 = time.perf_counter()
        lines: list[str] = []
        events: list[dict[str, Any]] = []
        done = False
        ttft = None
        try:
            with self.http.stream("POST", self.base_url + path, content=orjson.dumps(payload),
                                  headers={"content-type": "application/json"}, timeout=limit) as resp:  # fmt: skip
                if resp.status_code >= 300:
                    raw = _read_within(resp, t0, limit, f"stream {path}")
                    try:
                        err = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        err = raw.decode("utf-8", "replace")
                    return StreamReply(resp.status_code, "", [], False, None, time.perf_counter() - t0,
                                       err, dict(resp.headers))
                pending: list[str] = []  # data lines of an event whose JSON is not complete yet
                for line in _lines_within(resp, t0, limit, path):
                    lines.append(line)
                    if not line.startswith("data:"):
                        if line == "":
                            pending = []  # the event ends here (its data, if still partial, is dropped)
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done, pending = True, []
                        continue
                    # an event's JSON may span several data: lines (SSE joins them with a newline);
                    # a line that parses alone is an event even where blank lines are missing
                    ev = None
                    for candidate in (["\n".join([*pending, data])] if pending else []) + [data]:
                        try:
                            ev = orjson.loads(candidate)
                            break
                        except orjson.JSONDecodeError:
                            continue
                    if ev is None:
                        pending.append(data)
                        continue
                    pending = []
                    if isinstance(ev, dict):
                        events.append(ev)
                        if ttft is None and _has_content(ev):
                            ttft = time.perf_counter() - t0
                status = resp.status_code
                headers = dict(resp.headers)
        except httpx.TimeoutException as exc:
            raise ServerTimeout(f"stream {path}: no data within {limit:g}s") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise ServerUnreachable(f"stream {path}: {type(exc).__name__}: {exc}") from exc
        return StreamReply(status, "\n".join(lines), events, done, ttft, time.perf_counter() - t0,
                           headers=headers)

    # -- discovery -------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        r = self.get("/models")
        if not r.ok or not isinstance(r.body, dict):
            return []
        return [m.get("id") for m in r.body.get("data") or [] if isinstance(m, dict) and m.get("id")]

    def server_info(self) -> dict[str, Any]:
        """What the server says about itself (engine, version, context length), best effort."""
        info: dict[str, Any] = {"base_url": self.base_url, "model": self.model}
        r = self.get("/models")
        if r.ok and isinstance(r.body, dict):
            for m in r.body.get("data") or []:
                if isinstance(m, dict) and m.get("id") == self.model:
                    info["owned_by"] = m.get("owned_by")
                    for key in ("max_model_len", "context_length", "n_ctx"):
                        if isinstance(m.get(key), int):
                            info["context_length"] = m[key]
                    meta = m.get("meta") or {}
                    if isinstance(meta, dict) and isinstance(meta.get("n_ctx_train"), int):
                        info.setdefault("context_length_train", meta["n_ctx_train"])
        for path, key in (("/version", "version"), ("/props", "props"), ("/get_server_info", "server_info")):
            try:
                rr = self.request("GET", self.root_url + path, timeout=min(self.timeout, 10))
            except (ServerTimeout, ServerUnreachable):
                continue
            if rr.ok and isinstance(rr.body, dict):
                if key == "props":
                    n_ctx = (rr.body.get("default_generation_settings") or {}).get("n_ctx")
                    if isinstance(n_ctx, int):
                        info["context_length"] = n_ctx
                    info["engine"] = "llama.cpp"
                elif key == "server_info":
                    info["engine"] = "sglang"
                    if isinstance(rr.body.get("context_length"), int):
                        info["context_length"] = rr.body["context_length"]
                else:
                    info["engine_version"] = rr.body.get("version")
        if "engine_version" in info and "engine" not in info:
            info["engine"] = "vllm"  # vLLM answers /version; llama.cpp and SGLang have their own
        return info

    @property
    def known_tokenizer(self) -> Tokenizer | None:
        """The tokenizer if a check already discovered it (no requests sent)."""
        return self._tokenizer or None  # type: ignore[return-value]

    def tokenizer(self) -> Tokenizer | None:
        """The engine's tokenize/detokenize extras, or None when it offers none."""
        if self._tokenizer is not False:
            return self._tokenizer  # type: ignore[return-value]
        found: Tokenizer | None = None
        for flavor in ("llama-cpp-python", "llama.cpp", "vllm"):
            tok = Tokenizer(self, flavor)
            try:
                ids = tok.encode("hello world")
                back = tok.decode(ids)
                empty = tok.encode("")
            except (RuntimeError, ServerTimeout, ServerUnreachable, KeyError, TypeError, AttributeError):
                continue
            if ids and all(isinstance(i, int) for i in ids) and isinstance(back, str) and "hello" in back:
                tok.overhead = len(empty)
                found = tok
                break
        self._tokenizer = found
        return found


def _lines_within(resp: httpx.Response, t0: float, limit: float, path: str) -> Iterator[str]:
    """The body's lines (split at \\n, \\r\\n or \\r), the deadline checked at every chunk read: a
    server trickling one line without ever ending it is stopped too, not only one sending lines."""
    buf = ""
    for chunk in resp.iter_text():
        if time.perf_counter() - t0 > limit:
            raise ServerTimeout(f"stream {path}: not finished within {limit:g}s")
        buf += chunk
        parts = re.split(r"\r\n|\r(?!\Z)|\n", buf)  # a \r ending the chunk may start a \r\n
        buf = parts.pop()
        yield from parts
    if buf:
        yield buf.removesuffix("\r")


def _read_within(resp: httpx.Response, t0: float, limit: float, what: str) -> bytes:
    """The whole body, the deadline checked at every chunk read (httpx's timeout bounds each
    read, not the answer: a server trickling its body would never time out)."""
    chunks = []
    for chunk in resp.iter_bytes():
        chunks.append(chunk)
        if time.perf_counter() - t0 > limit:
            raise ServerTimeout(f"{what}: answer not complete within {limit:g}s")
    return b"".join(chunks)


def _has_content(ev: dict[str, Any]) -> bool:
    for ch in ev.get("choices") or []:
        if ch.get("text") or (ch.get("delta") or {}).get("content"):
            return True
    return False
