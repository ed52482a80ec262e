"""Run a probe suite against a server and collect the results (the library entry point)."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import yaml

from bugatlas.errors import BadInputError, BugAtlasError
from bugatlas.files import load_yaml
from bugatlas.probe.client import ProbeClient, ServerTimeout, ServerUnreachable
from bugatlas.probe.oracles import ORACLES, Context, Fail, Skip, short
from bugatlas.probe.suite import Suite, load_suite
from bugatlas.store.store import now_iso


@dataclass
class CheckResult:
    id: str
    oracle: str
    title: str
    status: str  # pass | fail | skip | error (an error is a defect of the probe, not the server)
    message: str
    duration_s: float
    evidence: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None
    symptom: str | None = None
    unexpected_output: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProbeReport:
    suite: str
    suite_source: str
    taxonomy: str
    base_url: str
    model: str | None
    server: dict[str, Any]
    started_at: str
    finished_at: str
    duration_s: float
    requests: int
    results: list[CheckResult]

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "skip": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return out

    @property
    def ok(self) -> bool:
        c = self.counts()
        return c["fail"] == 0 and c["error"] == 0

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts()
        d["ok"] = self.ok
        return d


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["load.concurrency=16", "determinism.repeats=5"]`` -> ``{"load": {"concurrency": 16}, …}``
    (values are read as YAML, so numbers, lists and booleans work)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        check, dot, param = key.partition(".")
        if not eq or not dot or not check or not param:
            raise BadInputError(f"--set {item}: expected CHECK.PARAM=VALUE, e.g. load.concurrency=16")
        try:
            out.setdefault(check, {})[param] = load_yaml(value)
        except yaml.YAMLError as exc:
            raise BadInputError(f"--set {item}: the value is not valid YAML ({str(exc).splitlines()[0]})") from exc
    return out


def run_probe(
    base_url: str,
    *,
    suite: str | Suite = "default",
    model: str | None = None,
    timeout: float = 60.0,
    overrides: dict[str, dict[str, Any]] | None = None,
    only: list[str] | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[str], None] | None = None,
    record: list[dict[str, Any]] | None = None,
) -> ProbeReport:
    """Run ``suite`` against the OpenAI-compatible server at ``base_url`` (e.g.
    ``http://127.0.0.1:8000/v1``) and return the report. Failures carry their liu2025
    symptom; checks the server cannot support are skipped with the reason. ``record``, when a
    list, receives every request sent (method, url, body, stream)."""
    if not re.match(r"https?://[^/\s]+", base_url or ""):
        raise BadInputError(f"--base-url {base_url!r}: expected an http(s) URL such as http://127.0.0.1:8000/v1")
    try:
        httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise BadInputError(f"--base-url {base_url!r}: not a valid URL ({exc})") from exc
    s = copy.deepcopy(suite) if isinstance(suite, Suite) else load_suite(suite)
    for cid in list(overrides or {}) + list(only or []):
        s.check(cid)  # unknown ids fail here, naming the check
    for cid, params in (overrides or {}).items():
        s.check(cid).params.update(params)
    checks = [c for c in s.checks if not only or c.id in only]
    client = ProbeClient(base_url, model=model, timeout=timeout, max_connections=64, record=record)
    started, t0 = now_iso(), time.perf_counter()
    try:
        try:
            _resolve_model(client, base_url)
            info = client.server_info()
        except (ServerTimeout, ServerUnreachable) as exc:
            raise BugAtlasError(f"--base-url {base_url}: cannot reach the server ({exc})") from exc
        ctx = Context(client, info)
        results: list[CheckResult] = []
        down_after: str | None = None
        for check in checks:
            if on_start:
                on_start(check.id)
            if down_after:
                res = CheckResult(check.id, check.oracle, check.title, "skip",
                                  f"server stopped answering after check {down_after}", 0.0)  # fmt: skip
            else:
                res = _run_check(ctx, s, check)
                if res.status == "fail" and not _reachable(client):
                    down_after = check.id
            results.append(res)
            if on_result:
                on_result(res)
        tok = client.known_tokenizer
        if tok and "engine" not in info:
            info["engine"] = tok.flavor  # the tokenizer endpoints' shape tells the engine apart
        return ProbeReport(
            suite=s.name, suite_source=s.source, taxonomy=s.taxonomy, base_url=client.base_url,
            model=client.model, server=info, started_at=started, finished_at=now_iso(),
            duration_s=round(time.perf_counter() - t0, 3), requests=client.requests, results=results,
        )  # fmt: skip
    finally:
        client.close()


def _resolve_model(client: ProbeClient, base_url: str) -> None:
    """Pick the first listed model when none is given; refuse a URL that is not an API root
    and a model the server refuses (every check would fail on it, and be stored as findings)."""
    r = client.get("/models")
    listed = [m.get("id") for m in (r.body.get("data") or [] if r.ok and isinstance(r.body, dict) else [])
              if isinstance(m, dict) and m.get("id")]  # fmt: skip
    hint = "" if client.base_url.endswith("/v1") else " (OpenAI-compatible servers answer under /v1)"
    if client.model is None:
        if not r.ok:
            raise BadInputError(f"--base-url {base_url}: GET /models answered HTTP {r.status}{hint}")
        if not listed:
            raise BugAtlasError(f"--base-url {base_url}: GET /models lists no model; pass --model")
        client.model = listed[0]
        return
    if client.model in listed or (r.ok and not listed):
        return
    # not listed (or no /models): servers may serve aliases, so ask once with a tiny request
    t = client.post("/completions", {"model": client.model, "prompt": "Hello", "max_tokens": 1, "temperature": 0})
    if t.status == 404 and not r.ok:
        raise BadInputError(f"--base-url {base_url}: GET /models and POST /completions answered HTTP 404{hint}")
    if 400 <= t.status < 500 and listed:
        raise BadInputError(f"--model {client.model}: the server refuses it (HTTP {t.status}: "
                            f"{short(t.error_message(), 120)}); GET /models lists {', '.join(listed[:10])}")  # fmt: skip


def _reachable(client: ProbeClient) -> bool:
    try:
        client.request("GET", client.base_url + "/models", timeout=min(client.timeout, 10))
        return True
    except ServerUnreachable:
        return False
    except ServerTimeout:
        return True  # hanging is not down; the next check will time out and say so


def _run_check(ctx: Context, suite: Suite, check: Any) -> CheckResult:
    params = suite.params_for(check)
    t0 = time.perf_counter()
    kind = None
    evidence: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    try:
        out = ORACLES[check.oracle](ctx, params)
        status, message, evidence, metrics = out.status, out.message, out.evidence, out.metrics
    except Fail as exc:
        status, message, kind, evidence = "fail", exc.message, exc.kind, exc.evidence
        metrics = evidence.pop("metrics", {}) if isinstance(evidence.get("metrics"), dict) else {}
    except Skip as exc:
        status, message, evidence = "skip", exc.reason, exc.evidence
    except ServerTimeout as exc:
        status, message, kind = "fail", str(exc), "timeout"
    except ServerUnreachable as exc:
        status, message, kind = "fail", str(exc), "unreachable"
    except Exception as exc:  # noqa: BLE001 - a probe defect must not hide the other checks
        status, message = "error", f"probe error: {type(exc).__name__}: {short(str(exc), 200)}"
    symptom = subtype = None
    if status == "fail":
        symptom, subtype = check.classify(kind or "assertion", suite)
    return CheckResult(check.id, check.oracle, check.title, status, message,
                       round(time.perf_counter() - t0, 3), evidence, kind, symptom, subtype, metrics)  # fmt: skip
