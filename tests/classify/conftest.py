"""Fixtures of the classify tests: real issues of the shared corpus, by repo and number."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import orjson
import pytest
from tests.conftest import CORPUS


@pytest.fixture(scope="session")
def corpus_records(shared_data: Path) -> dict[tuple[str, int], dict]:
    with gzip.open(CORPUS, "rb") as fh:
        return {(r["repo"], r["number"]): r for r in map(orjson.loads, fh)}


@pytest.fixture()
def write_jsonl(tmp_path: Path):
    def write(records, name: str = "issues.jsonl") -> Path:
        path = tmp_path / name
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        return path
    return write


class LocalServer:
    """A real HTTP server on 127.0.0.1 (an ephemeral port) in a thread; each POST gets
    ``respond(path, body) -> (status, bytes)``, answered as JSON. Subclasses script it."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code, data = outer.respond(self.path, dict(self.headers), body)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
