"""A deliberately faulty OpenAI-compatible server for the probe's tests and benchmark.

A real HTTP server on 127.0.0.1 (``http.server``, one thread per connection) with a tiny
deterministic "model": each token is a word chosen by hashing the prompt and the position, so
greedy answers repeat exactly, streams and non-streams agree, and counts are exact. Told to
(``FaultyServer(faults=[...])``, ``set_faults`` or ``POST /control {"faults": [...]}``), it
misbehaves in one specific way per fault; the tests check that exactly the matching oracle
fails. It offers llama.cpp-style ``/tokenize`` and ``/detokenize`` beside ``/v1``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VOCAB = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
    "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu river stone cloud "
    "forest garden window silver copper marble violet amber planet comet harbor meadow canyon "
    "island valley summit glacier desert lantern compass anchor beacon"
).split()
RUNAWAY = ["\nuser", "\nTell", " me", " more", "\nmodel", "\nSure", " thing"]

FAULTS = {
    "nondeterministic": "greedy answers are random, different on every request",
    "batch_variance": "answers change when other requests are in flight",
    "stream_mismatch": "streamed answers drop their first token",
    "broken_sse": "SSE events lack blank-line separators and the final data: [DONE]",
    "ignore_max_tokens": "generation ignores max_tokens",
    "ignore_stop": "generation ignores stop strings",
    "ignore_n": "n is ignored: always one choice",
    "bad_usage": "usage.prompt_tokens is overcounted by 9",
    "leak_special": "end-of-turn special tokens appear in the text",
    "runaway_turn": "chat answers run past end-of-turn into a new user turn",
    "lossy_roundtrip": "detokenize drops characters outside the Basic Multilingual Plane (emoji)",
    "bad_logprobs": "logprobs are positive and top_logprobs unsorted",
    "greedy_not_argmax": "at temperature 0 a less likely token is returned (a hidden penalty)",
    "error_on_empty_prompt": "an empty prompt gets HTTP 500",
    "hang_on_long_prompt": "a prompt longer than the context never gets an answer",
    "accept_negative_max_tokens": "negative max_tokens is accepted",
    "accept_unknown_model": "any model name is accepted",
    "crash_on_malformed_json": "a malformed JSON body kills the server",
    "slow_under_load": "every token takes 0.1 s while other requests are in flight",
}
TOKEN_RE = re.compile(r"\s*\S+|\s+")


def _h(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=4).digest(), "big")


class FaultyServer:
    def __init__(self, faults: list[str] | tuple[str, ...] = (), *, model: str = "faulty-7b",
                 context_length: int = 256, token_delay: float = 0.002, flavor: str = "llama.cpp"):  # fmt: skip
        # flavor: which engine's extras it imitates. "llama.cpp": /tokenize {content};
        # "vllm": /tokenize {model, prompt} and /version; "minimal": no tokenizer, and
        # logprobs and n > 1 refused with a 400 (for the skip paths)
        if flavor not in ("llama.cpp", "vllm", "minimal"):
            raise ValueError(f"unknown flavor {flavor!r}")
        self.flavor = flavor
        self.model = model
        self.context_length = context_length
        self.token_delay = token_delay
        self.set_faults(faults)
        self._in_flight = 0
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._pieces: list[str] = []
        self._closing = threading.Event()
        self.requests = 0
        self.httpd: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def set_faults(self, faults: list[str] | tuple[str, ...]) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.faults = set(faults)

    def start(self) -> str:
        server = self

        class Handler(_Handler):
            app = server

        ThreadingHTTPServer.request_queue_size = 128  # many simultaneous connects under load
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self._closing.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def crash(self) -> None:
        """Die like a process would: stop accepting and close the listening socket."""
        httpd, self.httpd = self.httpd, None
        if httpd is not None:
            self._closing.set()
            threading.Thread(target=lambda: (httpd.shutdown(), httpd.server_close()), daemon=True).start()

    def __enter__(self) -> FaultyServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the fake model --------------------------------------------------------------------
    def token_id(self, piece: str) -> int:
        with self._lock:
            if piece not in self._vocab:
                self._vocab[piece] = len(self._pieces)
                self._pieces.append(piece)
            return self._vocab[piece]

    def tokenize(self, text: str) -> list[int]:
        return [self.token_id(p) for p in TOKEN_RE.findall(text)]

    def detokenize(self, ids: list[int]) -> str:
        text = "".join(self._pieces[i] for i in ids)
        if "lossy_roundtrip" in self.faults:
            text = "".join(ch for ch in text if ord(ch) <= 0xFFFF)
        return text

    def generate(self, key: str, *, chat: bool, max_tokens: int, stop: list[str]) -> tuple[list[str], str]:
        """Token pieces and finish_reason, with the per-token delay and the faults applied."""
        natural = (4 + _h(key, "len") % 7) if chat else (12 + _h(key, "len") % 20)
        limit = natural if "ignore_max_tokens" in self.faults else min(natural, max_tokens)
        rng = random.Random()
        pieces: list[str] = []
        disturbed = False
        finish = "stop" if limit == natural else "length"
        for i in range(limit):
            busy = self._in_flight > 1
            disturbed |= busy
            time.sleep(0.1 if busy and "slow_under_load" in self.faults else self.token_delay)
            if "nondeterministic" in self.faults:
                word = rng.choice(VOCAB)
            else:
                word = VOCAB[_h(key, i) % len(VOCAB)]
            if disturbed and "batch_variance" in self.faults and i >= 2:
                word = VOCAB[(_h(key, i) + 1) % len(VOCAB)]
            pieces.append(" " + word)
            if stop and "ignore_stop" not in self.faults:
                text = "".join(pieces)
                hits = [text.find(s) for s in stop if s and s in text]
                if hits:
                    cut = min(hits)
                    return _split_at(pieces, cut), "stop"
        if chat and "runaway_turn" in self.faults and finish == "stop":
            while len(pieces) < max_tokens:
                pieces.append(RUNAWAY[len(pieces) % len(RUNAWAY)])
            finish = "length"
        if "leak_special" in self.faults and pieces and finish == "stop":
            pieces[-1] += "<end_of_turn>" if chat else "<|eot_id|>"
        return pieces, finish

    def logprobs(self, key: str, pieces: list[str], top: int) -> list[tuple[str, float, list[tuple[str, float]]]]:
        out = []
        for i, piece in enumerate(pieces):
            lp = -0.01 - (_h(key, i, "lp") % 100) / 100
            others = [" " + VOCAB[(_h(key, i) + k) % len(VOCAB)] for k in range(1, top + 1)]
            others = [w for w in others if w != piece][: top - 1]
            alts = [(piece, lp)] + [(w, lp - 0.5 * (k + 1)) for k, w in enumerate(others)]
            if "greedy_not_argmax" in self.faults and len(alts) > 1:
                alts = [(alts[1][0], lp), (piece, lp - 0.3)] + alts[2:]
                lp -= 0.3
            if "bad_logprobs" in self.faults:
                lp = 0.5
                alts = list(reversed(alts))
            out.append((piece, lp, alts[:top]))
        return out


def _split_at(pieces: list[str], cut: int) -> list[str]:
    out, pos = [], 0
    for p in pieces:
        if pos + len(p) <= cut:
            out.append(p)
        elif pos < cut:
            out.append(p[: cut - pos])
        pos += len(p)
    return out


class _Handler(BaseHTTPRequestHandler):
    app: FaultyServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet tests
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:  # noqa: N802
        self.app.requests += 1
        if self.path in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [{"id": self.app.model, "object": "model",
                             "owned_by": "bugatlas-tests", "max_model_len": self.app.context_length}]})  # fmt: skip
        elif self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/version" and self.app.flavor == "vllm":
            self._send(200, {"version": "0.0.0-faulty"})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:  # noqa: N802
        app = self.app
        app.requests += 1
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            if "crash_on_malformed_json" in app.faults:
                self._error(500, "Traceback (most recent call last): json.decoder.JSONDecodeError", "server_error")
                self.close_connection = True
                app.crash()
                return
            self._error(400, "Invalid JSON body: expecting a value")
            return
        if self.path == "/control":
            app.set_faults(body.get("faults", []))
            self._send(200, {"faults": sorted(app.faults)})
        elif self.path == "/tokenize" and app.flavor == "llama.cpp":
            self._send(200, {"tokens": app.tokenize(body.get("content", ""))})
        elif self.path == "/detokenize" and app.flavor == "llama.cpp":
            self._send(200, {"content": app.detokenize(body.get("tokens", []))})
        elif self.path == "/tokenize" and app.flavor == "vllm":
            if "prompt" not in body:
                self._error(400, "field required: prompt")
                return
            toks = app.tokenize(body["prompt"])
            self._send(200, {"tokens": toks, "count": len(toks), "max_model_len": app.context_length})
        elif self.path == "/detokenize" and app.flavor == "vllm":
            self._send(200, {"prompt": app.detokenize(body.get("tokens", []))})
        elif self.path in ("/v1/completions", "/v1/chat/completions"):
            with app._lock:
                app._in_flight += 1
            try:
                self._complete(body, chat=self.path.endswith("chat/completions"))
            finally:
                with app._lock:
                    app._in_flight -= 1
        else:
            self._error(404, f"no route {self.path}")

    # -- completions -------------------------------------------------------------------------
    def _complete(self, body: dict[str, Any], *, chat: bool) -> None:
        app = self.app
        model = body.get("model", app.model)
        if model != app.model and "accept_unknown_model" not in app.faults:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or (max_tokens < 1 and "accept_negative_max_tokens" not in app.faults):
            self._error(400, f"max_tokens must be at least 1, got {max_tokens}")
            return
        max_tokens = max(max_tokens, 1)
        if chat:
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs:
                self._error(400, "messages must be a non-empty list")
                return
            prompt = "".join(f"<start_of_turn>{m.get('role')}\n{m.get('content')}<end_of_turn>\n" for m in msgs)
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                self._error(400, "prompt must be a string")
                return
            if prompt == "" and "error_on_empty_prompt" in app.faults:
                self._error(500, "Internal Server Error: IndexError: list index out of range", "server_error")
                return
        n_prompt = len(app.tokenize(prompt))
        if n_prompt > app.context_length:
            if "hang_on_long_prompt" in app.faults:
                app._closing.wait(60)
                return
            self._error(400, f"This model's maximum context length is {app.context_length} tokens; "
                             f"the prompt has {n_prompt} tokens.")  # fmt: skip
            return
        n = body.get("n", 1) or 1
        if app.flavor == "minimal" and (n > 1 or body.get("logprobs")):
            self._error(400, "n > 1 and logprobs are not supported by this server")
            return
        if "ignore_n" in app.faults:
            n = 1
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        key = json.dumps([prompt, chat])
        pieces, finish = app.generate(key, chat=chat, max_tokens=max_tokens, stop=stop)
        usage = {"prompt_tokens": n_prompt + (9 if "bad_usage" in app.faults else 0), "completion_tokens": len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        want_lp = body.get("logprobs")
        top = (body.get("top_logprobs") or 0) if chat else (want_lp or 0)
        lps = app.logprobs(key, pieces, max(int(top), 1)) if want_lp else None
        created = int(time.time())
        rid = f"cmpl-{_h(key, time.time())}"
        if body.get("stream"):
            self._stream(rid, created, pieces, finish, chat, lps, n)
            return
        choices = []
        for i in range(n):
            text = "".join(pieces)
            if chat:
                c: dict[str, Any] = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                if lps is not None:
                    c["logprobs"] = {"content": [{"token": t, "logprob": lp, "top_logprobs": [
                        {"token": a, "logprob": b} for a, b in alts]} for t, lp, alts in lps]}
            else:
                c = {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                if lps is not None:
                    c["logprobs"] = {"tokens": [t for t, _, _ in lps], "token_logprobs": [lp for _, lp, _ in lps],
                                     "top_logprobs": [dict(alts) for _, _, alts in lps]}  # fmt: skip
            choices.append(c)
        self._send(200, {"id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
                         "model": app.model, "choices": choices, "usage": usage})  # fmt: skip

    def _stream(self, rid: str, created: int, pieces: list[str], finish: str, chat: bool,
                lps: Any, n: int) -> None:  # fmt: skip
        app = self.app
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        sep = "\n" if "broken_sse" in app.faults else "\n\n"
        obj = "chat.completion.chunk" if chat else "text_completion"
        if "stream_mismatch" in app.faults:
            pieces = pieces[1:]

        def event(choice: dict[str, Any]) -> None:
            data = {"id": rid, "object": obj, "created": created, "model": app.model, "choices": [choice]}
            self.wfile.write(f"data: {json.dumps(data)}{sep}".encode())
            self.wfile.flush()

        for i in range(n):
            if chat:
                event({"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            for piece in pieces:
                event({"index": i, "delta": {"content": piece}, "finish_reason": None} if chat
                      else {"index": i, "text": piece, "finish_reason": None, "logprobs": None})  # fmt: skip
            event({"index": i, "delta": {}, "finish_reason": finish} if chat
                  else {"index": i, "text": "", "finish_reason": finish, "logprobs": None})  # fmt: skip
        if "broken_sse" not in app.faults:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


if __name__ == "__main__":  # run by hand: python tests/probe/faulty_server.py [fault ...]
    import sys

    srv = FaultyServer(sys.argv[1:])
    print(srv.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
