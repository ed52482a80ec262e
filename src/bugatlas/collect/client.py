"""A GitHub API client that keeps a crawl alive: token pool, primary and secondary rate limits,
bounded retries of 5xx and timeouts, and no token ever leaking into an error or a log.

Primary limit: every answer's ``X-RateLimit-*`` headers (and a GraphQL ``rateLimit`` block)
update the token's known budget; before a request whose expected cost the token can no longer
pay, the client switches to another token or sleeps until the reset, so it never asks beyond
the limit the server announced. Secondary limit (403/429 naming it, any ``Retry-After`` in
seconds or as an HTTP-date, or any other 429): waits as told, else backs off exponentially from
a minute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from bugatlas.errors import BadInputError, BugAtlasError

DEFAULT_BASE_URL = "https://api.github.com"
RETRY_STATUS = {500, 502, 503, 504}
_TIMEOUT_HINTS = ("timeout", "something went wrong while executing your query")


class GitHubError(BugAtlasError):
    """GitHub refused a request for a reason retrying cannot fix."""


class NotFoundError(GitHubError):
    """The repository (or issue) does not exist or the token cannot see it."""


def tokens_from_env(env: dict[str, str] | None = None) -> list[str]:
    """``GITHUB_TOKENS`` (comma-separated pool) or ``GITHUB_TOKEN``."""
    env = os.environ if env is None else env
    pool = env.get("GITHUB_TOKENS") or env.get("GITHUB_TOKEN") or ""
    return [t.strip() for t in pool.split(",") if t.strip()]


@dataclass
class TokenState:
    token: str
    index: int
    remaining: int | None = None   # None: not known yet
    limit: int | None = None
    reset_at: float = 0.0          # epoch seconds

    def can_pay(self, cost: int, reserve: int, now: float) -> bool:
        return self.remaining is None or self.window_over(now) or self.remaining - cost >= reserve

    def window_over(self, now: float) -> bool:
        # Reset times come as whole epoch seconds (floored): allow one more second.
        return bool(self.reset_at) and now >= self.reset_at + 1.0


@dataclass
class ClientStats:
    requests: int = 0          # HTTP requests sent (retries included)
    retries: int = 0
    waits: int = 0             # times the client slept for a limit
    waited_seconds: float = 0.0
    points: int = 0            # GraphQL points spent (as reported by rateLimit.cost)
    remaining: int | None = None
    limit: int | None = None
    reset_at: float | None = None
    faults: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.retries, "waits": self.waits,
                "waited_seconds": round(self.waited_seconds, 2), "points": self.points,
                "rate_remaining": self.remaining, "faults": dict(self.faults)}  # fmt: skip


@dataclass
class Response:
    status: int
    body: Any            # decoded JSON
    method: str
    path: str
    request: Any         # JSON body sent (GraphQL query + variables), or None
    retry_after: float | None = None


class GitHubClient:
    """Talks to ``base_url`` (GitHub, GitHub Enterprise ``https://host/api/v3``, or a local
    stand-in) with the given tokens, used in turn.

    ``reserve``: points left untouched on every token (GitHub also spends them elsewhere).
    ``max_retries``: attempts after the first for 5xx, timeouts and secondary limits.
    ``on_fault(kind, response_or_None)`` sees every failed answer (the archive keeps them).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        tokens: list[str] | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 6,
        reserve: int = 0,
        backoff: float = 1.0,
        max_wait: float = 3900.0,
        secondary_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "bugatlas-collect",
    ):
        tokens = tokens if tokens is not None else tokens_from_env()
        if not tokens:
            raise BadInputError("no GitHub token: set GITHUB_TOKEN, or GITHUB_TOKENS=tok1,tok2 "
                                "for a pool")  # fmt: skip
        if httpx.URL(base_url.strip()).scheme not in ("http", "https"):
            raise BadInputError(f"--base-url: {base_url!r} is not an http(s) URL "
                                f"(e.g. https://api.github.com)")  # fmt: skip
        self.base_url = base_url.strip().rstrip("/")
        self.graphql_path = "/api/graphql" if self.base_url.endswith("/api/v3") else "/graphql"
        if self.graphql_path == "/api/graphql":  # GitHub Enterprise: /api/v3 and /api/graphql
            self._root = self.base_url.removesuffix("/api/v3")
        else:
            self._root = self.base_url
        self.tokens = [TokenState(t, i) for i, t in enumerate(tokens)]
        self._secrets = [t for t in tokens if t]
        self._current = 0
        self.timeout, self.max_retries, self.reserve = timeout, max_retries, reserve
        self.backoff, self.max_wait, self._sleep = backoff, max_wait, sleep
        self.secondary_wait = secondary_wait  # GitHub: without Retry-After, wait at least 1 min
        self.stats = ClientStats()
        self.on_fault: Callable[[str, Response | None], None] | None = None
        self.on_wait: Callable[[float, str], None] | None = None
        self._http = httpx.Client(timeout=timeout, headers={
            "User-Agent": user_agent, "Accept": "application/vnd.github+json"})  # fmt: skip
        self._checked = False
        self._costs: dict[tuple[int, Any], int] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- secrets ---------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with every token replaced by ***: for anything shown or stored."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _where(self) -> str:
        host = httpx.URL(self.base_url).host
        return host or self.base_url

    # -- rate-limit bookkeeping ------------------------------------------------------------
    def check_tokens(self) -> None:
        """Ask ``/rate_limit`` (free on GitHub) for each token: learns every budget and turns a
        bad token into a clear error before any crawling."""
        for state in self.tokens:
            attempt = 0
            while True:
                try:
                    resp = self._send("GET", "/rate_limit", None, state, check_auth=True)
                    break
                except httpx.TransportError as exc:  # timeouts included: retried like any request
                    self._fault("timeout" if isinstance(exc, httpx.TimeoutException)
                                else f"network ({type(exc).__name__})", None)  # fmt: skip
                    attempt += 1
                    if attempt > self.max_retries:
                        raise GitHubError(f"{self._where()}: cannot reach {self.base_url} ({exc}) after "
                                          f"{self.max_retries} retries; check --base-url / "
                                          f"GITHUB_API_URL and the network") from None  # fmt: skip
                    self.stats.retries += 1
                    self._sleep(min(self.backoff * 2 ** (attempt - 1), 60))
            if resp.status == 200 and isinstance(resp.body, dict):
                g = (resp.body.get("resources") or {}).get("graphql") or {}
                if "remaining" in g:
                    state.remaining, state.limit = int(g["remaining"]), int(g.get("limit") or 0)
                    state.reset_at = float(g.get("reset") or 0)
        self._checked = True
        self._publish(self.tokens[self._current])

    def _update_from_headers(self, state: TokenState, headers: httpx.Headers, path: str) -> None:
        if headers.get("x-ratelimit-resource") not in (None, "graphql" if path.endswith("graphql") else "core"):
            return
        if "x-ratelimit-remaining" in headers:
            try:
                state.remaining = int(headers["x-ratelimit-remaining"])
                state.limit = int(headers.get("x-ratelimit-limit") or state.limit or 0)
                state.reset_at = float(headers.get("x-ratelimit-reset") or state.reset_at)
            except ValueError:
                pass

    def _update_from_body(self, state: TokenState, body: Any) -> None:
        rate = (body.get("data") or {}).get("rateLimit") if isinstance(body, dict) else None
        if not isinstance(rate, dict):
            return
        if rate.get("remaining") is not None:
            state.remaining = int(rate["remaining"])
        if rate.get("limit") is not None:
            state.limit = int(rate["limit"])
        if rate.get("resetAt"):
            state.reset_at = _epoch(rate["resetAt"])
        if rate.get("cost") is not None:
            self.stats.points += int(rate["cost"])

    def _publish(self, state: TokenState) -> None:
        self.stats.remaining, self.stats.limit = state.remaining, state.limit
        self.stats.reset_at = state.reset_at or None

    def _pick_token(self, cost: int) -> TokenState:
        """A token that can pay ``cost`` now; else sleep until the earliest reset."""
        while True:
            now = time.time()
            order = self.tokens[self._current:] + self.tokens[:self._current]
            for state in order:
                if state.can_pay(cost, self.reserve, now):
                    if state.remaining is not None and state.window_over(now):
                        state.remaining = state.limit  # a new window has begun
                    self._current = state.index
                    return state
            wake = min(s.reset_at for s in self.tokens)
            self._wait(max(0.0, wake + 1.0 - now) + 0.05, "primary rate limit")

    def _wait(self, seconds: float, why: str) -> None:
        seconds = min(seconds, self.max_wait)
        self.stats.waits += 1
        self.stats.waited_seconds += seconds
        if self.on_wait:
            self.on_wait(seconds, why)
        self._sleep(seconds)

    # -- requests --------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict[str, Any], *, cost: int = 1,
                shrink: str | None = None, min_size: int = 10) -> Response:
        """POST a GraphQL document; returns the decoded answer (``data`` may hold partial
        results beside per-field ``errors``). ``cost``: the points it is expected to take.
        ``shrink``: a variable (a page size) halved after a timeout, down to ``min_size``."""
        body = {"query": query, "variables": variables}
        # Learn what the server really charges for this document and page size: an estimate
        # below the real cost would let a request through that the budget cannot pay.
        key = (hash(query), variables.get(shrink) if shrink else None)
        cost = max(cost, self._costs.get(key, 0))
        resp = self._request("POST", self.graphql_path, body, cost=cost, shrink=shrink,
                             min_size=min_size)  # fmt: skip
        rate = (resp.body.get("data") or {}).get("rateLimit") if isinstance(resp.body, dict) else None
        if isinstance(rate, dict) and rate.get("cost") is not None:
            key = (hash(query), body["variables"].get(shrink) if shrink else None)
            self._costs[key] = max(self._costs.get(key, 0), int(rate["cost"]))
        return resp

    def rest(self, path: str, params: dict[str, Any] | None = None) -> Response:
        if params:
            path = str(httpx.URL(path, params=params))
        return self._request("GET", path, None, cost=1)

    def _request(self, method: str, path: str, body: Any, *, cost: int, shrink: str | None = None,
                 min_size: int = 10) -> Response:
        if not self._checked:
            self.check_tokens()
        attempt, secondary = 0, 0
        while True:
            state = self._pick_token(cost)
            kind: str | None = None
            try:
                resp = self._send(method, path, body, state)
            except httpx.TimeoutException:
                resp, kind = None, "timeout"
            except httpx.TransportError as exc:
                resp, kind = None, f"network ({type(exc).__name__})"
            if resp is not None:
                kind = self._classify(resp)
                if kind is None:
                    return resp
                if kind == "rate-limited":  # primary limit: the server refused; wait for reset
                    state.remaining = 0
                    if state.reset_at <= time.time():  # no usable reset time given: a minute
                        state.reset_at = time.time() + 60
                    self._fault(kind, resp)
                    continue
                if kind == "secondary":
                    self._fault(kind, resp)
                    secondary += 1
                    if secondary > self.max_retries:
                        raise GitHubError(f"{self._where()}: still rate-limited (HTTP {resp.status}, "
                                          f"secondary limit) after {self.max_retries} waits; "
                                          f"try again later")  # fmt: skip
                    retry_after = resp.retry_after
                    wait = retry_after if retry_after is not None else min(
                        self.secondary_wait * 2 ** (secondary - 1), 900)
                    self._wait(wait, "secondary rate limit")
                    continue
            self._fault(kind or "error", resp)
            attempt += 1
            if attempt > self.max_retries:
                what = f"HTTP {resp.status}" if resp is not None else kind
                raise GitHubError(f"{self._where()}{path.split('?')[0]}: {what} after "
                                  f"{self.max_retries} retries; try again later (the crawl "
                                  f"resumes where it stopped)")  # fmt: skip
            self.stats.retries += 1
            if shrink and body and isinstance(body["variables"].get(shrink), int):
                body["variables"][shrink] = max(min_size, body["variables"][shrink] // 2)
            pause = min(self.backoff * 2 ** (attempt - 1), 60)
            if resp is not None and resp.retry_after is not None:  # a 503 may say how long
                pause = max(pause, min(resp.retry_after, self.max_wait))
            self._sleep(pause)

    def _classify(self, resp: Response) -> str | None:
        """None when the answer is usable; else what went wrong (raises on fatal answers)."""
        if resp.status in RETRY_STATUS:
            return f"http-{resp.status}"
        message = _message(resp.body)
        if resp.status in (403, 429):
            low = message.lower()
            if "secondary rate limit" in low or "abuse" in low or resp.retry_after is not None:
                return "secondary"
            if "rate limit" in low:
                return "rate-limited"
            if resp.status == 429:  # Too Many Requests, no Retry-After: back off as for secondary
                return "secondary"
            raise GitHubError(f"{self._where()}: HTTP {resp.status} forbidden ({self.redact(message)})")
        if resp.status == 404:
            raise NotFoundError(f"{self._where()}{resp.path.split('?')[0]}: not found")
        if resp.status >= 400:
            raise GitHubError(f"{self._where()}{resp.path.split('?')[0]}: HTTP {resp.status} "
                              f"({self.redact(message)})")  # fmt: skip
        if isinstance(resp.body, dict) and resp.body.get("errors") and not resp.body.get("data"):
            errors = resp.body["errors"]
            types = {e.get("type") for e in errors if isinstance(e, dict)}
            text = " ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
            if "secondary rate limit" in text.lower():  # GitHub may send it as a 200
                return "secondary"
            if "RATE_LIMITED" in types:
                return "rate-limited"
            if any(h in text.lower() for h in _TIMEOUT_HINTS):
                return "graphql-timeout"
            if "NOT_FOUND" in types:
                raise NotFoundError(self.redact(text))
            raise GitHubError(f"{self._where()}: GraphQL error: {self.redact(text)[:300]}")
        return None

    def _fault(self, kind: str, resp: Response | None) -> None:
        self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1
        if self.on_fault:
            self.on_fault(kind, resp)

    def _send(self, method: str, path: str, body: Any, state: TokenState, *,
              check_auth: bool = False) -> Response:
        headers = {"Authorization": f"bearer {state.token}"}
        url = self._root + path if path.startswith("/api/graphql") else self.base_url + path
        content = orjson.dumps(body) if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        self.stats.requests += 1
        try:
            r = self._http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            # httpx messages name the URL, never headers; redact anyway (a token in a URL).
            raise type(exc)(self.redact(str(exc))) from None
        try:
            data = orjson.loads(r.content) if r.content else None
        except orjson.JSONDecodeError:
            data = {"message": r.text[:200]}
        resp = Response(r.status_code, data, method, path, body,
                        _retry_after(r.headers.get("retry-after")))
        if r.status_code == 401:
            n = len(self.tokens)
            which = f"token {state.index + 1} of {n}" if n > 1 else "the token"
            raise GitHubError(f"{self._where()}: {which} was rejected (401 {self.redact(_message(data)) or 'Bad credentials'}); "
                              f"check GITHUB_TOKEN / GITHUB_TOKENS")  # fmt: skip
        self._update_from_headers(state, r.headers, path)
        self._update_from_body(state, data)
        self._publish(state)
        return resp


def _message(body: Any) -> str:
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return body["message"]
        if isinstance(body.get("errors"), list):
            return " ".join(str(e.get("message", "")) for e in body["errors"] if isinstance(e, dict))
    return ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
