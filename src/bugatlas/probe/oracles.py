"""The probe's oracles: small checks of a running OpenAI-compatible server.

LLM output is not fixed, so most oracles are metamorphic or differential: they compare the
server with itself (the same greedy request twice, alone and inside a batch, streamed and not,
with and without a stop string) rather than with an expected text. Each oracle is a function
``oracle(ctx, params) -> Outcome`` registered in :data:`ORACLES`; it returns :func:`passed`,
or raises :class:`Fail` (with a failure kind the suite maps to a liu2025 symptom) or
:class:`Skip` (the server does not offer what the check needs, with the reason).
"""

from __future__ import annotations

import math
import re
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from bugatlas.files import load_yaml
from bugatlas.probe.client import (
    ProbeClient,
    ServerTimeout,
    ServerUnreachable,
    StreamReply,
    choice_text,
)


@dataclass
class Outcome:
    status: str  # pass | fail | skip
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None  # failure kind (see suite.FAILURE_KINDS)
    metrics: dict[str, Any] = field(default_factory=dict)


class Fail(Exception):
    def __init__(self, message: str, kind: str = "assertion", **evidence: Any):
        super().__init__(message)
        self.message, self.kind, self.evidence = message, kind, evidence


class Skip(Exception):
    def __init__(self, reason: str, **evidence: Any):
        super().__init__(reason)
        self.reason, self.evidence = reason, evidence


def passed(message: str, metrics: dict[str, Any] | None = None, **evidence: Any) -> Outcome:
    return Outcome("pass", message, evidence, metrics=metrics or {})


Oracle = Callable[["Context", dict[str, Any]], Outcome]
ORACLES: dict[str, Oracle] = {}


def oracle(name: str) -> Callable[[Oracle], Oracle]:
    def register(fn: Oracle) -> Oracle:
        ORACLES[name] = fn
        return fn

    return register


@cache
def probe_data() -> dict[str, Any]:
    """Marker lists, round-trip texts and filler prompts (``probe_data.yaml``)."""
    text = (resources.files("bugatlas.probe") / "probe_data.yaml").read_text(encoding="utf-8")
    return load_yaml(text)


def short(text: Any, n: int = 160) -> str:
    s = text if isinstance(text, str) else repr(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def first_difference(a: str, b: str) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


class Context:
    """What an oracle can use: the client, the model, server facts, and request helpers."""

    def __init__(self, client: ProbeClient, info: dict[str, Any]):
        self.client = client
        self.info = info
        self._deterministic: dict[Any, Any] = {}

    @property
    def model(self) -> str | None:
        return self.client.model

    # -- request building ------------------------------------------------------------------
    def payload(self, p: dict[str, Any], **extra: Any) -> tuple[str, dict[str, Any]]:
        """(path, body) of a greedy request built from the check's parameters."""
        endpoint = extra.pop("endpoint", p.get("endpoint", "completions"))
        body: dict[str, Any] = {"temperature": 0, "max_tokens": p.get("max_tokens", 24)}
        if self.model:
            body["model"] = self.model
        if p.get("seed") is not None:
            body["seed"] = p["seed"]
        if endpoint == "chat":
            path = "/chat/completions"
            body["messages"] = p.get("messages") or [{"role": "user", "content": p.get("prompt", "Hello")}]
        elif endpoint == "completions":
            path = "/completions"
            body["prompt"] = p.get("prompt", "Hello")
        else:
            raise Fail(f"unknown endpoint {endpoint!r} (completions or chat)", kind="assertion")
        if "messages" in extra and endpoint != "chat":
            extra.pop("messages")
        body.update(extra)
        body.update(p.get("extra_body") or {})
        return path, body

    def call(self, path: str, body: dict[str, Any], *, feature: str | None = None) -> dict[str, Any]:
        """POST and return the JSON body; 5xx fails the check, 4xx skips it when ``feature``
        names an optional capability (else fails it as a rejected valid request)."""
        r = self.client.post(path, body)
        if r.status >= 500:
            raise Fail(f"HTTP {r.status} on {path}: {short(r.error_message())}", kind="server_error",
                       request=short(body, 300))  # fmt: skip
        if r.status >= 400:
            if feature:
                raise Skip(f"server does not offer {feature}: HTTP {r.status} {short(r.error_message(), 120)}")
            raise Fail(f"HTTP {r.status} on a valid request to {path}: {short(r.error_message())}",
                       kind="rejected", request=short(body, 300))  # fmt: skip
        if not isinstance(r.body, dict) or not isinstance(r.body.get("choices"), list) or not r.body["choices"]:
            raise Fail(f"{path}: answer has no choices: {short(r.body)}", kind="assertion")
        return r.body

    def greedy(self, p: dict[str, Any], **extra: Any) -> dict[str, Any]:
        path, body = self.payload(p, **extra)
        return self.call(path, body)

    def deterministic(self, p: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A greedy answer that repeats exactly; Skip when it does not (metamorphic relations
        need a deterministic baseline; the determinism oracle reports that failure)."""
        path, body = self.payload(p, **extra)
        key = (path, repr(sorted(body.items())))
        if key not in self._deterministic:
            a, b = self.call(path, body), self.call(path, body)
            same = choice_text(a) == choice_text(b)
            self._deterministic[key] = (a, same, choice_text(b))
        a, same, other = self._deterministic[key]
        if not same:
            raise Skip("needs a deterministic baseline, but the same greedy request gave different "
                       "texts (see the determinism check)", a=short(choice_text(a)), b=short(other))  # fmt: skip
        return a

    def alive(self) -> tuple[bool, str]:
        """Does the server still answer a small normal request (within the timeout)?"""
        path, body = self.payload({"prompt": "Hello", "max_tokens": 2})
        for attempt in range(2):
            try:
                r = self.client.post(path, body)
                break
            except ServerTimeout as exc:
                return False, f"a normal request then hung: {exc}"
            except ServerUnreachable as exc:
                # a server that closed the pooled keep-alive connection resets it once; only a
                # failure on a fresh connection means the server is gone
                if attempt:
                    return False, f"then the server stopped answering ({exc})"
                time.sleep(0.5)
        if r.ok:
            return True, f"a normal request then succeeded in {r.elapsed:.2f}s"
        return False, f"a normal request then got HTTP {r.status}: {short(r.error_message())}"

    def tokenizer(self):
        return self.client.tokenizer()

    def token_count(self, body: dict[str, Any]) -> int | None:
        usage = body.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            return usage["completion_tokens"]
        return None


def concurrently(fns: list[Callable[[], Any]], timeout: float) -> list[tuple[Any, BaseException | None]]:
    """Run the calls at the same moment (a barrier releases them together)."""
    barrier = threading.Barrier(len(fns))

    def wrap(fn: Callable[[], Any]) -> Any:
        barrier.wait(timeout=timeout)
        return fn()

    out: list[tuple[Any, BaseException | None]] = []
    with ThreadPoolExecutor(max_workers=len(fns)) as pool:
        futures = [pool.submit(wrap, fn) for fn in fns]
        for fut in futures:
            try:
                out.append((fut.result(), None))
            except BaseException as exc:  # noqa: BLE001 - reported per request
                out.append((None, exc))
    return out


def _raise_first(errors: list[BaseException]) -> None:
    for exc in errors:
        if isinstance(exc, (Fail, Skip)):
            raise exc
    for exc in errors:
        if isinstance(exc, (ServerTimeout, ServerUnreachable)):
            raise exc
    if errors:
        raise errors[0]


# -- oracles ----------------------------------------------------------------------------------
@oracle("smoke")
def smoke(ctx: Context, p: dict[str, Any]) -> Outcome:
    """A greedy completion and a greedy chat completion are answered (chat may be absent)."""
    ev: dict[str, Any] = {}
    body = ctx.greedy(p, endpoint="completions")
    ev["completion"] = short(choice_text(body))
    try:
        chat = ctx.greedy(p, endpoint="chat")
        ev["chat"] = short(choice_text(chat))
    except Fail as exc:
        if exc.kind != "rejected":
            raise
        ev["chat"] = f"not offered ({exc.message})"
    return passed("completion and chat answered", **ev)


@oracle("determinism")
def determinism(ctx: Context, p: dict[str, Any]) -> Outcome:
    """The same greedy request (temperature 0, fixed seed) repeated gives the same text,
    finish_reason and token count."""
    repeats = max(2, int(p.get("repeats", 2)))
    answers = [ctx.greedy(p) for _ in range(repeats)]
    sigs = [(choice_text(a), a["choices"][0].get("finish_reason"), ctx.token_count(a)) for a in answers]
    for i, sig in enumerate(sigs[1:], start=1):
        if sig != sigs[0]:
            at = first_difference(sig[0], sigs[0][0])
            raise Fail(f"request 1 and {i + 1} of {repeats} differ (text diverges at char {at})",
                       first=short(sigs[0][0]), other=short(sig[0]),
                       finish_reasons=[sigs[0][1], sig[1]], tokens=[sigs[0][2], sig[2]])  # fmt: skip
    return passed(f"{repeats} identical answers", text=short(sigs[0][0]), tokens=sigs[0][2],
                  finish_reason=sigs[0][1])  # fmt: skip


@oracle("batch_invariance")
def batch_invariance(ctx: Context, p: dict[str, Any]) -> Outcome:
    """The same greedy request gives the same text inside N concurrent requests (copies of it
    and other prompts) as alone."""
    n = max(2, int(p.get("concurrency", 4)))
    alone = choice_text(ctx.deterministic(p))
    path, target = ctx.payload(p)
    fillers = p.get("filler_prompts") or probe_data()["filler_prompts"]
    jobs: list[tuple[bool, dict[str, Any]]] = []
    for i in range(n):
        if i % 2 == 0:
            jobs.append((True, target))
        else:
            _, filler = ctx.payload({**p, "prompt": fillers[i // 2 % len(fillers)],
                                     "messages": None})  # fmt: skip
            jobs.append((False, filler))
    results = concurrently([lambda b=b: ctx.call(path, b) for _, b in jobs], ctx.client.timeout)
    _raise_first([e for _, e in results if e is not None])
    mismatches = []
    for (is_target, _), (body, _) in zip(jobs, results, strict=True):
        if is_target and choice_text(body) != alone:
            mismatches.append(choice_text(body))
    targets = sum(1 for t, _ in jobs if t)
    if mismatches:
        at = first_difference(alone, mismatches[0])
        raise Fail(f"{len(mismatches)} of {targets} copies in a batch of {n} differ from the answer alone "
                   f"(diverges at char {at})", alone=short(alone), in_batch=short(mismatches[0]))  # fmt: skip
    return passed(f"{targets} copies in a batch of {n} equal the answer alone", text=short(alone))


@oracle("stream_consistency")
def stream_consistency(ctx: Context, p: dict[str, Any]) -> Outcome:
    """A streamed greedy answer has the same text and finish_reason as the non-streamed one."""
    body = ctx.deterministic(p)
    path, req = ctx.payload(p)
    s = ctx.client.stream(path, req)
    _stream_status(s, path)
    text, streamed = choice_text(body), s.text()
    if text != streamed:
        at = first_difference(text, streamed)
        raise Fail(f"streamed text differs from the non-streamed one at char {at}",
                   non_streamed=short(text), streamed=short(streamed))  # fmt: skip
    fr, sfr = body["choices"][0].get("finish_reason"), s.finish_reason()
    if sfr is not None and fr != sfr:
        raise Fail(f"finish_reason differs: non-streamed {fr!r}, streamed {sfr!r}", text=short(text))
    return passed(f"same text over {len(s.events)} chunks", text=short(text), finish_reason=fr)


def _stream_status(s: StreamReply, path: str) -> None:
    if s.status >= 500:
        raise Fail(f"HTTP {s.status} on a streamed {path}: {short(s.error_body)}", kind="server_error")
    if s.status >= 400:
        raise Skip(f"server does not stream {path}: HTTP {s.status} {short(s.error_body, 120)}")


SSE_FIELDS = ("data", "event", "id", "retry")


@oracle("sse_format")
def sse_format(ctx: Context, p: dict[str, Any]) -> Outcome:
    """The stream is well-formed server-sent events: content type text/event-stream, every
    line a field or a comment, events separated by blank lines, each event's data a JSON chunk
    with choices, a finish_reason on the last choice chunk, and ``data: [DONE]`` last."""
    path, req = ctx.payload(p)
    s = ctx.client.stream(path, req)
    _stream_status(s, path)
    problems: list[str] = []
    ctype = s.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        problems.append(f"content-type is {ctype!r}, not text/event-stream")
    events: list[str] = []
    data: list[str] = []
    for n, line in enumerate(s.raw.split("\n"), start=1):
        if line == "":
            if data:
                events.append("\n".join(data))
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name not in SSE_FIELDS:
            problems.append(f"line {n} is not an SSE field: {short(line, 60)!r}")
            continue
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        problems.append("the stream ended without the blank line that closes its last event")
        events.append("\n".join(data))
    done_at = [i for i, e in enumerate(events) if e.strip() == "[DONE]"]
    if not done_at:
        problems.append("no `data: [DONE]` event")
    elif done_at[0] != len(events) - 1 or len(done_at) > 1:
        problems.append(f"`[DONE]` is event {done_at[0] + 1} of {len(events)}, not only the last")
    finish = False
    import orjson

    for i, e in enumerate(events):
        if e.strip() == "[DONE]":
            continue
        try:
            chunk = orjson.loads(e)
        except orjson.JSONDecodeError:
            problems.append(f"event {i + 1} data is not one JSON object: {short(e, 80)!r}")
            continue
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            problems.append(f"event {i + 1} has no choices list")
            continue
        if any(c.get("finish_reason") for c in chunk["choices"]):
            finish = True
    if not finish:
        problems.append("no chunk carries a finish_reason")
    if problems:
        raise Fail(f"{len(problems)} SSE problem(s): {problems[0]}", problems=problems[:10],
                   events=len(events))  # fmt: skip
    return passed(f"{len(events)} well-formed events, [DONE] last", events=len(events), content_type=ctype)


@oracle("max_tokens")
def max_tokens(ctx: Context, p: dict[str, Any]) -> Outcome:
    """With max_tokens=m the completion has at most m tokens (usage and, where offered, the
    engine's tokenizer), and finish_reason is "length" when it used all m."""
    tok = ctx.tokenizer()
    tolerance = int(p.get("tolerance", 1))
    rows = []
    for m in p.get("limits", [1, 5]):
        body = ctx.greedy({**p, "max_tokens": int(m)})
        text = choice_text(body)
        used = ctx.token_count(body)
        retok = tok.count(text) if tok else None
        fr = body["choices"][0].get("finish_reason")
        rows.append({"max_tokens": m, "completion_tokens": used, "retokenized": retok,
                     "finish_reason": fr, "text": short(text, 60)})  # fmt: skip
        if used is None and retok is None:
            raise Skip("no usage counts and no tokenize endpoint: cannot count tokens")
        if used is not None and used > m:
            raise Fail(f"max_tokens={m} but usage reports {used} completion tokens", limits=rows)
        if retok is not None and retok > m + tolerance:
            raise Fail(f"max_tokens={m} but the text re-tokenizes to {retok} tokens", limits=rows)
        if used == m and fr not in ("length", None):
            raise Fail(f"max_tokens={m} reached but finish_reason is {fr!r}, not 'length'", limits=rows)
    return passed(f"limits {', '.join(str(r['max_tokens']) for r in rows)} honoured", limits=rows)


@oracle("stop")
def stop(ctx: Context, p: dict[str, Any]) -> Outcome:
    """Metamorphic: take a word from the middle of a deterministic greedy answer as the stop
    string; the answer with that stop must be the baseline cut before the word's first
    occurrence, without the stop string, with finish_reason "stop"."""
    q = {**p, "max_tokens": int(p.get("max_tokens", 32))}
    base = choice_text(ctx.deterministic(q))
    word = None
    for m in re.finditer(r"[A-Za-z]{3,}", base):
        if m.start() >= len(base) // 4 and base.find(m.group()) == m.start():
            word, cut = m.group(), m.start()
            break
    if word is None:
        raise Skip("the baseline answer has no word to use as a stop string", baseline=short(base))
    body = ctx.greedy(q, stop=[word])
    text, fr = choice_text(body), body["choices"][0].get("finish_reason")
    expected = base[:cut]
    ev = {"stop": word, "baseline": short(base), "got": short(text), "finish_reason": fr}
    if word in text:
        raise Fail(f"the stop string {word!r} is in the returned text", **ev)
    if text.rstrip() != expected.rstrip():
        raise Fail(f"with stop {word!r} the text is not the baseline cut before it", expected=short(expected), **ev)
    if fr != "stop":
        raise Fail(f"stopped on {word!r} but finish_reason is {fr!r}", **ev)
    return passed(f"stopped before {word!r}", **ev)


@oracle("n_choices")
def n_choices(ctx: Context, p: dict[str, Any]) -> Outcome:
    """A request with n=k returns k choices with indexes 0..k-1 (a 4xx means not offered)."""
    k = int(p.get("n", 2))
    path, body = ctx.payload({**p, "max_tokens": p.get("max_tokens", 8)}, n=k)
    out = ctx.call(path, body, feature=f"n={k}")
    idx = sorted(c.get("index", 0) for c in out["choices"])
    if len(out["choices"]) != k:
        raise Fail(f"n={k} but {len(out['choices'])} choice(s) returned", indexes=idx)
    if idx != list(range(k)):
        raise Fail(f"choice indexes are {idx}, not 0..{k - 1}")
    return passed(f"{k} choices, indexes {idx}", texts=[short(choice_text(out, i), 60) for i in range(k)])


@oracle("usage")
def usage(ctx: Context, p: dict[str, Any]) -> Outcome:
    """usage.total = prompt + completion; finish_reason is stop or length ("length" only when
    max_tokens was used up); and, where the server offers a tokenizer, the counts agree (within
    a tolerance) with the prompt and the returned text re-tokenized. Without a tokenizer only
    the arithmetic is checked (approximate)."""
    m = int(p.get("max_tokens", 12))
    tol = int(p.get("tolerance", 2))
    body = ctx.greedy({**p, "max_tokens": m})
    u = body.get("usage")
    text, fr = choice_text(body), body["choices"][0].get("finish_reason")
    if not isinstance(u, dict):
        raise Fail("the answer has no usage object", text=short(text))
    pt, ct, tt = u.get("prompt_tokens"), u.get("completion_tokens"), u.get("total_tokens")
    ev: dict[str, Any] = {"usage": u, "finish_reason": fr, "text": short(text, 80)}
    if not all(isinstance(x, int) and x >= 0 for x in (pt, ct, tt)):
        raise Fail("usage counts are missing or not non-negative integers", **ev)
    if pt + ct != tt:
        raise Fail(f"prompt_tokens {pt} + completion_tokens {ct} != total_tokens {tt}", **ev)
    if fr not in ("stop", "length", "eos"):
        raise Fail(f"finish_reason {fr!r} is not stop or length", **ev)
    if fr == "length" and ct < m:
        raise Fail(f"finish_reason 'length' but only {ct} of max_tokens={m} used", **ev)
    tok = ctx.tokenizer()
    if tok is None:
        return passed("arithmetic consistent (approximate: the server offers no tokenizer to recount)", **ev)
    retok = tok.count(text)
    path, sent = ctx.payload({**p, "max_tokens": m})
    chat = "messages" in sent
    # A chat prompt is the messages rendered by the server's chat template, which adds tokens the
    # tokenize endpoint cannot know: the messages' own tokens are only a lower bound there.
    prompt_tok = (sum(len(tok.encode(str(msg.get("content") or ""))) for msg in sent["messages"]) if chat
                  else len(tok.encode(sent["prompt"])))  # fmt: skip
    ev.update(retokenized_completion=retok, retokenized_prompt=prompt_tok, tokenizer=tok.flavor)
    if abs(retok - ct) > tol:
        raise Fail(f"completion_tokens {ct} but the text re-tokenizes to {retok}", **ev)
    if chat:
        if pt + tol < prompt_tok:
            raise Fail(f"prompt_tokens {pt} but the chat messages alone tokenize to {prompt_tok}", **ev)
        return passed(f"counts agree with the tokenizer (completion {ct} vs {retok}; prompt {pt} ≥ "
                      f"{prompt_tok} of the messages before the chat template)", **ev)
    if abs(prompt_tok - pt) > tol:
        raise Fail(f"prompt_tokens {pt} but the prompt tokenizes to {prompt_tok}", **ev)
    return passed(f"counts agree with the tokenizer (completion {ct} vs {retok}, prompt {pt} vs {prompt_tok})", **ev)


def _leaks(text: str, markers: list[str], control: str) -> list[str]:
    found = [mk for mk in markers if mk in text]
    for m in re.finditer(control, text):
        found.append(f"control char U+{ord(m.group()):04X} at {m.start()}")
    return found


@oracle("special_tokens")
def special_tokens(ctx: Context, p: dict[str, Any]) -> Outcome:
    """No special token (end-of-turn, BOS/EOS, role headers) or control character appears in
    the text of completions or chat answers, streamed or not."""
    data = probe_data()
    markers = p.get("markers") or data["special_tokens"]
    control = p.get("control_chars") or data["control_chars"]
    checked = 0
    for prompt in p.get("prompts") or [p.get("prompt", "Hello")]:
        for endpoint in p.get("endpoints", ["completions", "chat"]):
            q = {**p, "prompt": prompt, "endpoint": endpoint, "messages": None}
            try:
                body = ctx.greedy(q)
            except Fail as exc:
                if exc.kind == "rejected" and endpoint == "chat":
                    continue  # a completions-only server: chat is checked nowhere else either
                raise
            texts = [("non-streamed", choice_text(body))]
            path, req = ctx.payload(q)
            s = ctx.client.stream(path, req)
            if s.status == 200:
                texts.append(("streamed", s.text()))
            for how, text in texts:
                checked += 1
                found = _leaks(text, markers, control)
                if found:
                    raise Fail(f"{endpoint} ({how}) text contains {found[0]!r}", found=found,
                               prompt=prompt, text=short(text, 200))  # fmt: skip
    return passed(f"{checked} answers free of {len(markers)} special tokens and control characters")


@oracle("end_of_turn")
def end_of_turn(ctx: Context, p: dict[str, Any]) -> Outcome:
    """A short chat answer ends by itself (finish_reason "stop" before max_tokens) and does not
    run on into a new turn (turn-start markers or role headers in the text). The first of
    ``prompts`` that gets a non-empty answer is judged; an empty turn shows nothing either way."""
    m = int(p.get("max_tokens", 160))
    data = probe_data()
    candidates = [[{"role": "user", "content": q}] for q in p.get("prompts") or []] or [p.get("messages")]
    empty = 0
    for messages in candidates:
        body = ctx.greedy({**p, "endpoint": "chat", "max_tokens": m, "messages": messages})
        text, fr = choice_text(body), body["choices"][0].get("finish_reason")
        if text.strip():
            break
        empty += 1
    else:
        raise Skip(f"all {empty} chat answers were empty (the model ended its turn at once): "
                   "end-of-turn handling cannot be judged")  # fmt: skip
    used = ctx.token_count(body)
    ev = {"prompt": short(messages[-1].get("content", ""), 80), "text": short(text, 200), "finish_reason": fr,
          "completion_tokens": used, "max_tokens": m}  # fmt: skip
    for mk in p.get("turn_markers") or data["turn_markers"]:
        if mk in text:
            raise Fail(f"the answer runs into a new turn ({mk!r} in the text)", **ev)
    for rx in p.get("role_continuation") or data["role_continuation"]:
        hit = re.search(rx, text)
        if hit:
            raise Fail(f"the answer runs into a new turn (role header {hit.group().strip()!r})", **ev)
    if fr != "stop":
        raise Fail(f"the answer did not end by itself: finish_reason {fr!r} after {used} tokens", **ev)
    if used is not None and used >= m:
        raise Fail(f"the answer used all {m} tokens", **ev)
    return passed(f"ended by itself after {used} tokens", **ev)


@oracle("roundtrip")
def roundtrip(ctx: Context, p: dict[str, Any]) -> Outcome:
    """detokenize(tokenize(text)) == text for multilingual, emoji, code and whitespace text,
    through the engine's own tokenize/detokenize endpoints."""
    tok = ctx.tokenizer()
    if tok is None:
        raise Skip("the server offers no tokenize/detokenize endpoints")
    texts = p.get("texts") or probe_data()["roundtrip_texts"]
    bad = []
    for text in texts:
        ids = tok.encode(text)
        back = tok.decode(ids)
        if back != text:
            bad.append({"text": text, "back": back, "tokens": len(ids), "diverges_at": first_difference(text, back)})
    if bad:
        raise Fail(f"{len(bad)} of {len(texts)} texts change in a round trip, e.g. {short(bad[0]['text'], 40)!r} "
                   f"-> {short(bad[0]['back'], 40)!r}", failures=bad, tokenizer=tok.flavor)  # fmt: skip
    return passed(f"{len(texts)} texts round-trip unchanged", tokenizer=tok.flavor)


def _check_top(tops: list[float], chosen: float | None, where: str, greedy: bool, eps: float) -> str | None:
    for v in tops:
        if not math.isfinite(v):
            return f"{where}: top logprob {v} is not finite"
        if v > eps:
            return f"{where}: top logprob {v} > 0"
    for a, b in zip(tops, tops[1:], strict=False):
        if b > a + eps:
            return f"{where}: top_logprobs not sorted ({a} before {b})"
    if greedy and chosen is not None and tops and chosen < tops[0] - 1e-3:
        return f"{where}: greedy token logprob {chosen} is below the top alternative {tops[0]}"
    return None


@oracle("logprobs")
def logprobs(ctx: Context, p: dict[str, Any]) -> Outcome:
    """Where logprobs are offered: every token logprob is finite and <= 0, top_logprobs are
    sorted in descending order; with ``greedy_top: true``, also that at temperature 0 the
    returned token is the most likely one (no hidden logit processing such as a default
    repetition penalty changes greedy choices)."""
    top = int(p.get("top", 5))
    endpoint = p.get("endpoint", "completions")
    eps = float(p.get("epsilon", 1e-4))
    if endpoint == "chat":
        path, body = ctx.payload(p, logprobs=True, top_logprobs=top)
    else:
        path, body = ctx.payload(p, logprobs=top)
    r = ctx.client.post(path, body)
    if isinstance(r.body, str) and re.search(r"\b(NaN|-?Infinity)\b", r.body):
        raise Fail("the answer is not valid JSON: it contains NaN/Infinity logprobs", body=short(r.body))
    if r.status >= 500:
        raise Fail(f"HTTP {r.status} on a logprobs request: {short(r.error_message())}", kind="server_error")
    if r.status >= 400:
        raise Skip(f"server does not offer logprobs: HTTP {r.status} {short(r.error_message(), 120)}")
    lp = ((r.body or {}).get("choices") or [{}])[0].get("logprobs")
    if not lp:
        raise Skip("the server ignored the logprobs request (no logprobs in the answer)")
    rows: list[tuple[float | None, list[float]]] = []
    if endpoint == "chat":
        for item in lp.get("content") or []:
            rows.append((item.get("logprob"), [t.get("logprob") for t in item.get("top_logprobs") or []]))
    else:
        tops = lp.get("top_logprobs") or []
        for i, chosen in enumerate(lp.get("token_logprobs") or []):
            t = tops[i] if i < len(tops) and tops[i] else {}
            rows.append((chosen, list(t.values()) if isinstance(t, dict) else [x.get("logprob") for x in t]))
    if not rows:
        raise Skip("logprobs present but empty")
    for i, (chosen, tops_i) in enumerate(rows):
        where = f"token {i}"
        if chosen is not None:
            if not isinstance(chosen, (int, float)) or not math.isfinite(chosen):
                raise Fail(f"{where}: logprob {chosen!r} is not finite", tokens=len(rows))
            if chosen > eps:
                raise Fail(f"{where}: logprob {chosen} > 0", tokens=len(rows))
        if any(not isinstance(v, (int, float)) for v in tops_i):
            raise Fail(f"{where}: non-numeric top logprob in {tops_i}")
        problem = _check_top([float(v) for v in tops_i], chosen, where, bool(p.get("greedy_top", False)), eps)
        if problem:
            raise Fail(problem, chosen=chosen, top=tops_i[:top], text=short(choice_text(r.body)))
    return passed(f"{len(rows)} tokens: finite, <= 0, sorted top-{top}",
                  first=[rows[0][0], rows[0][1][:3]])  # fmt: skip


BAD_CASES = ("empty_prompt", "long_prompt", "negative_max_tokens", "unknown_model", "malformed_json", "custom")


@oracle("bad_request")
def bad_request(ctx: Context, p: dict[str, Any]) -> Outcome:
    """An invalid or hostile request gets a 4xx with a clear message (or, where ``expect``
    allows, a normal answer) within the timeout, and the server still answers a normal request
    afterwards: no crash, no hang."""
    case = p.get("case", "custom")
    expect = [str(e) for e in p.get("expect", ["4xx"])]
    path, body = ctx.payload({**p, "max_tokens": 8})
    content: bytes | None = None
    if case == "empty_prompt":
        body["prompt"] = ""
    elif case == "long_prompt":
        ctx_len = p.get("context_length") or ctx.info.get("context_length")
        words = 2 * int(ctx_len) + 64 if ctx_len else int(p.get("long_prompt_words", 40000))
        body["prompt"] = "hello " * words
    elif case == "negative_max_tokens":
        body["max_tokens"] = -5
    elif case == "unknown_model":
        body["model"] = p.get("unknown_model", "bugatlas-probe-no-such-model")
    elif case == "malformed_json":
        content = b'{"model": "m", "prompt": "Hello", "max_tokens": 4,'
    elif case == "custom":
        path = p.get("path", path)
        body = p.get("body", body)
        content = p["raw"].encode() if p.get("raw") else None
    else:
        raise Fail(f"unknown case {case!r} (one of {', '.join(BAD_CASES)})")
    url = ctx.client.base_url + path
    ev: dict[str, Any] = {"case": case}
    try:
        if content is not None:
            r = ctx.client.request("POST", url, content=content, headers={"content-type": "application/json"})
        else:
            r = ctx.client.request("POST", url, json=body)
    except ServerTimeout as exc:
        alive, how = ctx.alive()
        raise Fail(f"no answer within {ctx.client.timeout:g}s; {how}", kind="timeout" if alive else "not_alive",
                   **ev) from exc  # fmt: skip
    except ServerUnreachable as exc:
        alive, how = ctx.alive()
        raise Fail(f"connection dropped ({exc}); {how}", kind="unreachable" if alive else "not_alive", **ev) from exc
    msg = r.error_message() if r.status >= 400 else ""
    ev.update(status=r.status, error_message=short(msg, 200))
    alive, how = ctx.alive()
    ev["afterwards"] = how
    if not alive:
        raise Fail(f"HTTP {r.status}; {how}", kind="not_alive", **ev)
    klass = f"{r.status // 100}xx"
    if r.status >= 500:
        raise Fail(f"HTTP {r.status} (a server error, not a client error): {short(msg, 120)}",
                   kind="server_error", **ev)  # fmt: skip
    if klass not in expect:
        if klass == "2xx":
            raise Fail(f"accepted with HTTP {r.status}; expected {' or '.join(expect)}", kind="accepted",
                       answer=short(r.body, 200), **ev)  # fmt: skip
        raise Fail(f"HTTP {r.status}; expected {' or '.join(expect)}", kind="accepted", **ev)
    if klass == "4xx" and len(msg.strip()) < 3:
        raise Fail(f"HTTP {r.status} without an error message", kind="unclear_error", **ev)
    if klass == "2xx" and not (isinstance(r.body, dict) and r.body.get("choices")):
        raise Fail(f"HTTP {r.status} but the answer has no choices: {short(r.body)}", kind="accepted", **ev)
    return passed(f"HTTP {r.status}{': ' + short(msg, 80) if msg else ''}; {how}", **ev)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


@oracle("load")
def load(ctx: Context, p: dict[str, Any]) -> Outcome:
    """N concurrent streams all complete (200, [DONE]) within ``bound_s`` seconds and the server
    answers normally afterwards; reports latency and time-to-first-token p50/p95 and
    throughput."""
    n = int(p.get("concurrency", 8))
    bound = float(p.get("bound_s", 120))
    fillers = p.get("filler_prompts") or probe_data()["filler_prompts"]
    reqs = [ctx.payload({**p, "prompt": fillers[i % len(fillers)], "messages": None,
                         "max_tokens": int(p.get("max_tokens", 32))}) for i in range(n)]  # fmt: skip
    tok = ctx.tokenizer() if p.get("count_with_tokenizer", True) else None
    t0 = time.perf_counter()
    results = concurrently([lambda pr=pr: ctx.client.stream(*pr) for pr in reqs], ctx.client.timeout)
    wall = time.perf_counter() - t0
    errors = [e for _, e in results if e is not None]
    streams: list[StreamReply] = [s for s, e in results if e is None]
    # complete = answered 200 and ended with a finish_reason or [DONE]; framing itself is
    # judged by the sse_format oracle, not here
    bad = [s for s in streams if s.status != 200 or not (s.done or s.finish_reason())]
    tokens = 0
    for s in streams:
        usage = next((ev.get("usage") for ev in reversed(s.events) if ev.get("usage")), None)
        if usage and usage.get("completion_tokens"):
            tokens += usage["completion_tokens"]
        elif tok is not None:
            tokens += tok.count(s.text())
        else:
            tokens += sum(1 for ev in s.events if any(c.get("text") or (c.get("delta") or {}).get("content")
                                                        for c in ev.get("choices") or []))  # fmt: skip
    lat = [s.elapsed for s in streams]
    ttft = [s.ttft for s in streams if s.ttft is not None]
    metrics = {
        "concurrency": n, "wall_s": round(wall, 3), "completed": len(streams) - len(bad),
        "latency_p50_s": _round(_pct(lat, 0.5)), "latency_p95_s": _round(_pct(lat, 0.95)),
        "ttft_p50_s": _round(_pct(ttft, 0.5)), "ttft_p95_s": _round(_pct(ttft, 0.95)),
        "output_tokens": tokens, "tokens_per_s": _round(tokens / wall if wall else None),
        "requests_per_s": _round(len(streams) / wall if wall else None),
        "mean_latency_s": _round(statistics.fmean(lat) if lat else None),
    }  # fmt: skip
    if errors:
        exc = errors[0]
        kind = "timeout" if isinstance(exc, ServerTimeout) else "unreachable" if isinstance(exc, ServerUnreachable) else "server_error"
        alive, how = ctx.alive()
        raise Fail(f"{len(errors)} of {n} streams failed ({exc}); {how}", kind=kind if alive else "not_alive",
                   metrics=metrics)  # fmt: skip
    if bad:
        s = bad[0]
        kind = "server_error" if s.status >= 500 else "rejected" if s.status >= 400 else "assertion"
        raise Fail(f"{len(bad)} of {n} streams incomplete (HTTP {s.status}, [DONE] {'seen' if s.done else 'missing'})",
                   kind=kind, metrics=metrics)  # fmt: skip
    alive, how = ctx.alive()
    if not alive:
        raise Fail(f"all {n} streams completed; {how}", kind="not_alive", metrics=metrics)
    if wall > bound:
        raise Fail(f"{n} concurrent streams took {wall:.1f}s > bound {bound:g}s", kind="slow", metrics=metrics)
    ttft_bound = p.get("ttft_p95_s")
    if ttft_bound is not None and (metrics["ttft_p95_s"] or 0) > float(ttft_bound):
        raise Fail(f"TTFT p95 {metrics['ttft_p95_s']}s > bound {ttft_bound}s", kind="slow", metrics=metrics)
    return passed(f"{n} streams in {wall:.1f}s (bound {bound:g}s), {metrics['tokens_per_s']} tok/s, "
                  f"TTFT p50 {metrics['ttft_p50_s']}s; {how}", metrics=metrics, **metrics)  # fmt: skip


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# -- user-defined request checks -------------------------------------------------------------
def _get_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in [x for x in str(path).split(".") if x]:
        if isinstance(cur, list) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(cur) <= i < len(cur):
                raise KeyError(path)
            cur = cur[i]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(path)
    return cur


ASSERT_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda v, x: v == x,
    "not_equals": lambda v, x: v != x,
    "contains": lambda v, x: x in v,
    "not_contains": lambda v, x: x not in v,
    "regex": lambda v, x: re.search(x, str(v)) is not None,
    "not_regex": lambda v, x: re.search(x, str(v)) is None,
    "in": lambda v, x: v in x,
    "exists": lambda v, x: True,
    "len_le": lambda v, x: len(v) <= x,
    "len_ge": lambda v, x: len(v) >= x,
    "le": lambda v, x: v <= x,
    "ge": lambda v, x: v >= x,
    "lt": lambda v, x: v < x,
    "gt": lambda v, x: v > x,
    "absent": lambda v, x: False,  # reached only when the path exists
}


@oracle("request")
def request(ctx: Context, p: dict[str, Any]) -> Outcome:
    """A user-defined check: send ``body`` (``model`` filled in) to ``path``, optionally
    streamed, and assert on the status and on fields of the answer (dotted paths; for streams
    the fields are text, finish_reason, done, events)."""
    path = p.get("path", "/chat/completions")
    body = dict(p.get("body") or {})
    if ctx.model and "model" not in body:
        body["model"] = ctx.model
    expect = p.get("expect") or {}
    want = expect.get("status", "2xx")
    wants = [str(w) for w in (want if isinstance(want, list) else [want])]
    if p.get("stream"):
        s = ctx.client.stream(path, body)
        status = s.status
        answer: Any = {"text": s.text(), "finish_reason": s.finish_reason(), "done": s.done,
                       "events": len(s.events), "error": s.error_body}  # fmt: skip
    elif p.get("method", "POST").upper() == "GET":
        r = ctx.client.get(path)
        status, answer = r.status, r.body
    else:
        r = ctx.client.post(path, body)
        status, answer = r.status, r.body
    if str(status) not in wants and f"{status // 100}xx" not in wants:
        kind = "server_error" if status >= 500 else "assertion"
        raise Fail(f"HTTP {status}; expected {' or '.join(wants)}", kind=kind, answer=short(answer, 200))
    for a in expect.get("assert") or []:
        op = a.get("op", "equals")
        if op not in ASSERT_OPS:
            raise Fail(f"unknown assertion op {op!r} (known: {', '.join(ASSERT_OPS)})")
        try:
            value = _get_path(answer, a["path"])
        except KeyError as exc:
            if op == "absent":
                continue
            raise Fail(f"{a['path']}: not in the answer", answer=short(answer, 200)) from exc
        try:
            ok = ASSERT_OPS[op](value, a.get("value"))
        except TypeError:
            ok = False
        if not ok:
            raise Fail(f"{a['path']} {op} {a.get('value')!r} failed: value is {short(value, 100)!r}",
                       answer=short(answer, 200))  # fmt: skip
    return passed(f"HTTP {status}, {len(expect.get('assert') or [])} assertion(s) hold", answer=short(answer, 160))
