"""--timeout bounds a whole answer: a real server trickling its body is reported, not waited on."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bugatlas.probe import run_probe


class _Trickle(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stop = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        data = json.dumps({"data": [{"id": "trickle"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        stream = bool(body.get("stream"))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if stream else "application/json")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        # a body that never ends: one byte every 0.1 s (for a stream: one line never closed)
        piece = b"d" if stream else b" "
        try:
            while not self.stop.wait(0.1):
                self.wfile.write(b"1\r\n" + piece + b"\r\n")
                self.wfile.flush()
        except OSError:
            pass


@pytest.fixture
def trickle_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    srv.daemon_threads = True
    _Trickle.stop.clear()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    _Trickle.stop.set()
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("check", ["smoke", "sse_format"])
def test_a_trickled_answer_is_a_timeout(trickle_url, check):
    t0 = time.perf_counter()
    report = run_probe(trickle_url, only=[check], timeout=1.0)
    assert time.perf_counter() - t0 < 10
    (r,) = report.results
    assert (r.status, r.kind, r.symptom) == ("fail", "timeout", "System Hang"), r.message
    assert "within 1s" in r.message
