"""Fixtures for the annotation tests: a small store with real-looking issues (one with a
hostile body) and a two-level codebook object following the taxonomy API contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bugatlas.store import Issue, Store

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


@dataclass
class Cat:
    id: str
    name: str
    parent: str | None = None
    definition: str = ""
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


@dataclass
class Dim:
    name: str
    multi_label: bool
    levels: list[str]
    categories: list[Cat]


class ToyCodebook:
    """Two-level root causes, flat symptoms, a multi-label component dimension."""

    name = "toy"
    title = "Toy codebook"

    def __init__(self) -> None:
        def c(i, n, p=None):
            return Cat(i, n, p, definition=f"Definition of {n}.", include=[f"{n} example"])
        self.dimensions = {
            "symptom": Dim("symptom", False, ["symptom"], [
                c("crash", "Crash"), c("hang", "System Hang"), c("wrong", "Unexpected Output")]),
            "root_cause": Dim("root_cause", False, ["group", "root_cause"], [
                c("env", "Environment"), c("code", "Code"),
                c("incompatible_version", "Incompatible Version", "env"),
                c("missing_dependency", "Missing Dependency", "env"),
                c("algorithm", "Incorrect Algorithm Implementation", "code"),
                c("api_misuse", "API Misuse", "code")]),
            "component": Dim("component", True, ["component"], [
                c("kernel", "Kernel"), c("scheduler", "Scheduler"), c("api", "API Server")]),
        }

    def dimension(self, name):
        return self.dimensions[name]

    def category(self, dim, key):
        for cat in self.dimensions[dim].categories:
            if key in (cat.id, cat.name):
                return cat
        raise KeyError(f"{dim}: {key}")

    def path(self, dim, key):
        cat = self.category(dim, key)
        out = [cat]
        while cat.parent:
            cat = self.category(dim, cat.parent)
            out.insert(0, cat)
        return out

    def leaves(self, dim):
        cats = self.dimensions[dim].categories
        parents = {c.parent for c in cats}
        return [c for c in cats if c.id not in parents]


@pytest.fixture()
def toy_codebook() -> ToyCodebook:
    return ToyCodebook()


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
