"""Done-when: kill -9 the crawl at random points five times, rerun, and the store is identical
to an uninterrupted crawl (no duplicates, no gaps)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from bugatlas.collect import canonical_dump, collect_repos, replay_archive
from bugatlas.collect.testing import FakeGitHub
from bugatlas.store import Store

from .conftest import TOKEN

SGL = "sgl-project/sglang"
PAGE = "10"


def _cli(db, url):
    env = {**os.environ, "GITHUB_TOKEN": TOKEN}
    return subprocess.Popen(
        [sys.executable, "-m", "bugatlas.cli", "collect", SGL, "--base-url", url, "--db", str(db),
         "--page-size", PAGE, "--archive", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_kill_nine_five_times_then_rerun_equals_an_uninterrupted_crawl(small_data, tmp_path):
    rng = random.Random(20261127)
    with FakeGitHub(small_data, tokens=[TOKEN], latency=0.03) as gh:
        ref = Store(tmp_path / "reference.db")
        collect_repos(ref, [SGL], base_url=gh.url, tokens=[TOKEN], page_size=int(PAGE))
        want = canonical_dump(ref)

        db = tmp_path / "killed.db"
        killed_mid_crawl = 0
        for _ in range(5):
            proc = _cli(db, gh.url)
            target = gh.stats.graphql + rng.randint(1, 5)
            deadline = time.time() + 120
            while proc.poll() is None and gh.stats.graphql < target and time.time() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.04))  # land anywhere: mid-request, mid-commit
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_crawl += 1
            proc.wait()
        assert killed_mid_crawl == 5
        with Store(db) as partial:
            stored = partial.count_issues()
        assert stored < 300, stored  # the kills really interrupted the crawl

        proc = _cli(db, gh.url)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()

    store = Store(db)
    assert canonical_dump(store) == want
    # every page was applied exactly once: the crawl's own counter matches the issues
    (issues,) = store.conn.execute("SELECT issues FROM collect_state WHERE repo = ?", (SGL,)).fetchone()
    assert issues == 300
    pages = store.conn.execute("SELECT COUNT(*) FROM collect_archive WHERE kind = 'issues'").fetchone()[0]
    assert pages == 30
    # and the archive of the interrupted crawls replays to the same store
    replayed = Store(tmp_path / "replayed.db")
    replay_archive(replayed, store)
    assert canonical_dump(replayed) == want
