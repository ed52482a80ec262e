from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import store_copy

from bugatlas.diagnose.index import SearchIndex
from bugatlas.store import Store


@pytest.fixture(scope="session")
def _indexed_store_file(_imported_store_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("indexed") / "corpus.db"
    shutil.copy(_imported_store_file, path)
    with Store(path) as store:
        SearchIndex(store).build()
    return path


@pytest.fixture()
def indexed_store(_indexed_store_file: Path, tmp_path: Path) -> Store:
    """A fresh copy of the shared corpus store with its diagnose index built."""
    yield from store_copy(_indexed_store_file, tmp_path)
