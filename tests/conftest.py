"""Fixtures shared by every stage's tests.

Tests that need the real data read it from ../shared/data (beside the repository) and fail
with a clear message when it is missing; everything else they build themselves.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bugatlas import Store, import_paths

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BUGATLAS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
CORPUS = SHARED_DATA / "serving-issues-2025.jsonl.gz"
LIU_CSV = SHARED_DATA / "liu2025" / "dataset.csv"
OLF_DIR = SHARED_DATA / "open-llm-failures"

# A user's own codebook with three levels and neither signals nor definitions (analyze and
# classify tests of codebooks given by path)
USER_CODEBOOK_3_LEVELS = """\
name: mine
dimensions:
  cause:
    multi_label: true
    levels: [cause_area, cause_kind, cause]
    categories:
      - {id: env, name: Environment}
      - {id: hw, name: Hardware, parent: env}
      - {id: oom, name: GPU Out Of Memory, parent: hw}
      - {id: code, name: Engine Code}
      - {id: kern, name: Kernels, parent: code}
      - {id: attn, name: Attention Kernel Bug, parent: kern}
"""


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; fails (not skips) when it is missing, naming where it looked."""
    for path in (CORPUS, LIU_CSV, OLF_DIR):
        if not path.exists():
            pytest.fail(
                f"shared data missing: {path} (expected ../shared/data beside the repository, "
                f"or set BUGATLAS_SHARED_DATA)",
                pytrace=False,
            )
    return SHARED_DATA


def store_copy(source: Path, tmp_path: Path) -> Iterator[Store]:
    """Open a private copy of a prepared store file (tests may write to it); close it after."""
    path = tmp_path / source.name
    shutil.copy(source, path)
    store = Store(path)
    yield store
    store.close()


@pytest.fixture(scope="session")
def _imported_store_file(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "corpus.db"
    with Store(path) as store:
        import_paths(store, [CORPUS, LIU_CSV, OLF_DIR], progress=False)
    return path


@pytest.fixture()
def corpus_store(_imported_store_file: Path, tmp_path: Path) -> Store:
    """A fresh copy of a store holding the shared corpus, Liu et al. and Open-LLM-Failures."""
    yield from store_copy(_imported_store_file, tmp_path)
