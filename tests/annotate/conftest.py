"""Fixtures for the annotation tests: a small store with real-looking issues (one with a
hostile body) and a small two-level codebook loaded from a YAML file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bugatlas.store import Issue, Store
from bugatlas.taxonomy import Codebook, load_codebook

HOSTILE_BODY = """Steps: run the server.

<script>window.__pwned = 1</script>
<img src="x" onerror="window.__pwned = 2">
[click me](javascript:window.__pwned=3)
<a href="javascript:window.__pwned=4">raw link</a>

```
Traceback (most recent call last):
""" + "\n".join(f"  frame {i}" for i in range(60)) + """
RuntimeError: CUDA error: out of memory
```
"""


# Two-level root causes, flat symptoms, a multi-label component dimension: a real codebook
# file, loaded by the taxonomy stage like any user's codebook.
_TOY = {
    "symptom": (False, ["symptom"], [("crash", "Crash", None), ("hang", "System Hang", None),
                                      ("wrong", "Unexpected Output", None)]),
    "root_cause": (False, ["group", "root_cause"], [
        ("env", "Environment", None), ("code", "Code", None),
        ("incompatible_version", "Incompatible Version", "env"),
        ("missing_dependency", "Missing Dependency", "env"),
        ("algorithm", "Incorrect Algorithm Implementation", "code"),
        ("api_misuse", "API Misuse", "code")]),
    "component": (True, ["component"], [("kernel", "Kernel", None), ("scheduler", "Scheduler", None),
                                         ("api", "API Server", None)]),
}


def toy_codebook_file(folder: Path) -> Path:
    dimensions = {
        name: {"multi_label": multi, "levels": levels, "categories": [
            {"id": i, "name": n, **({"parent": p} if p else {}),
             "definition": f"Definition of {n}.", "include": [f"{n} example"]} for i, n, p in cats]}
        for name, (multi, levels, cats) in _TOY.items()
    }
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump({"name": "toy", "title": "Toy codebook", "dimensions": dimensions},
                                   sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture()
def toy_codebook(tmp_path: Path) -> Codebook:
    return load_codebook(toy_codebook_file(tmp_path))


def make_issues(n: int = 60) -> list[Issue]:
    repos = ["vllm-project/vllm", "ggml-org/llama.cpp", "sgl-project/sglang"]
    out = []
    for i in range(n):
        repo = repos[i % 3]
        body = HOSTILE_BODY if i == 0 else f"Issue {i} body with `code` and **bold**.\n\n    log line\n"
        out.append(Issue(repo=repo, number=100 + i, title=f"Issue {i}: something broke",
                         body=body, state="open" if i % 2 else "closed",
                         created_at=f"202{4 + i % 2}-01-0{1 + i % 9}T00:00:00Z",
                         html_url=f"https://github.com/{repo}/issues/{100 + i}"))
    return out


@pytest.fixture()
def small_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "study.db")
    store.upsert_issues(make_issues())
    yield store
    store.close()


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, an ephemeral port, in a thread."""

    def __init__(self, db_path: Path, sample: str | None = None, codebook=None):
        import threading
        import time

        import uvicorn

        from bugatlas.annotate.app import create_app

        self.store = Store(db_path)
        app = create_app(self.store, sample, codebook=codebook)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not (self.server.started and self.server.servers):
            if time.monotonic() > deadline:
                raise RuntimeError("annotation server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.store.close()
