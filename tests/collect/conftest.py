"""Fixtures for the collect tests: the shared corpus served by a real local GitHub stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bugatlas.collect.testing import Data, FakeGitHub, load_corpus

TOKEN = "ghp_TESTtoken0123456789abcdefSECRET"
TOKEN2 = "ghp_SECONDtoken9876543210zyxwSECRET"
CORPUS_NAME = "serving-issues-2025.jsonl.gz"


@pytest.fixture(scope="session")
def corpus_path(shared_data: Path) -> Path:
    return shared_data / CORPUS_NAME


@pytest.fixture()
def small_data(corpus_path: Path) -> Data:
    """300 sglang issues (fresh per test: tests change it)."""
    return load_corpus(corpus_path, repos=["sgl-project/sglang"], limit_per_repo=300)


@pytest.fixture()
def server(small_data: Data) -> Iterator[FakeGitHub]:
    with FakeGitHub(small_data, tokens=[TOKEN, TOKEN2]) as gh:
        yield gh
