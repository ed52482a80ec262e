"""The import pipeline's read-ahead threads: errors reach the caller, early stops end them."""

from __future__ import annotations

import threading
import time

import pytest
from tests.conftest import CORPUS

from bugatlas.importers.base import detect_format, read_ahead


def _reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "bugatlas-read-ahead"]


def test_error_in_the_producer_is_raised_in_the_consumer() -> None:
    def items():
        yield 1
        raise ValueError("broken record")

    got = []
    with pytest.raises(ValueError, match="broken record"):
        for item in read_ahead(items()):
            got.append(item)
    assert got == [1]


def test_stopping_early_ends_the_threads(shared_data) -> None:
    for _ in range(3):  # format sniffing reads one record of a 2,997-issue gzipped file
        assert detect_format(CORPUS) == "github"
    deadline = time.monotonic() + 5
    while _reader_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _reader_threads() == []


def test_order_is_kept() -> None:
    assert list(read_ahead(iter(range(10_000)), depth=2)) == list(range(10_000))
