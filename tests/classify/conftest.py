"""Fixtures of the classify tests: real issues of the shared corpus, by repo and number."""

from __future__ import annotations

import gzip
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
