"""The probe reads a stream as SSE events: an event's JSON may span several `data:` lines."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bugatlas.probe import run_probe

PIECES = [" red", " blue", " and", " yellow"]


class _MultiLineData(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._json({"data": [{"id": "sse-model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if not body.get("stream"):
            self._json({"choices": [{"index": 0, "text": "".join(PIECES), "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})  # fmt: skip
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks = [{"choices": [{"index": 0, "text": p, "finish_reason": None}]} for p in PIECES]
        chunks.append({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        for chunk in chunks:
            # valid SSE: the event's data is its data lines joined with "\n" (here: indented JSON)
            data = "\n".join("data: " + line for line in json.dumps(chunk, indent=1).split("\n"))
            self.wfile.write((data + "\n\n").encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture
def server_url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _MultiLineData)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def test_json_over_several_data_lines_is_one_event(server_url):
    # sse_format judged this stream well-formed while stream_consistency, reading each data: line
    # as an event, saw no text and failed a correct server as "Unexpected Output"
    report = run_probe(server_url, only=["sse_format", "stream_consistency", "load"], timeout=5,
                       overrides={"load": {"concurrency": 2}})  # fmt: skip
    by_id = {r.id: r for r in report.results}
    assert report.ok, [(r.id, r.status, r.message) for r in report.results]
    assert by_id["sse_format"].evidence["events"] == 6
    assert "over 5 chunks" in by_id["stream_consistency"].message
