"""Study data loaded once per session from the real shared files (read-only use)."""

from __future__ import annotations

import pytest

from bugatlas.analyze import load_study


@pytest.fixture(scope="session")
def analysis_store(_imported_store_file):
    from bugatlas import Store

    store = Store(_imported_store_file)
    yield store
    store.close()


@pytest.fixture(scope="session")
def liu(analysis_store):
    return load_study(analysis_store, "liu2025")


@pytest.fixture(scope="session")
def olf(analysis_store):
    return load_study(analysis_store, "yu2026-artifact")


@pytest.fixture(scope="session")
def corpus(analysis_store):
    return load_study(analysis_store, None)
