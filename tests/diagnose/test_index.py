"""The search index on the real shared corpus: build, incremental update, status, search."""

from __future__ import annotations

from pathlib import Path

from bugatlas.diagnose.index import SearchIndex
from bugatlas.diagnose.parse import extract_log, parse_log
from bugatlas.store.records import Issue

LOGS = Path(__file__).parent / "logs"


def test_status_after_build(indexed_store):
    st = SearchIndex(indexed_store).status()
    assert st["indexed"] == st["issues_in_store"] == 2997
    assert st["up_to_date"] and st["to_index"] == 0
    assert st["with_log"] > 700 and st["signature_parsed"] > 0.75 * st["with_log"]
    assert st["vectorized"] == 2997 and st["model"]["version"] == 1


def test_rebuild_is_incremental(indexed_store):
    ix = SearchIndex(indexed_store)
    again = ix.build()
    assert again.indexed == 0 and again.unchanged == 2997 and not again.refitted
    issue = indexed_store.get_issue("ggml-org/llama.cpp", 1846)
    new_body = (issue.body or "") + "\n```\nterminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n```"
    indexed_store.upsert_issues([issue.model_copy(update={"body": new_body})])
    indexed_store.upsert_issues([Issue(repo="ggml-org/llama.cpp", number=999999, title="GGML_ASSERT on load",
                                       body="```\nggml.c:14307: GGML_ASSERT(tensor->src1 == NULL || tensor->src1->backend == GGML_BACKEND_CPU) failed\n```")])
    assert ix.status()["to_index"] == 2
    st = ix.build()
    assert st.indexed == 2 and st.unchanged == 2997 - 1 and st.vectorized == 2 and not st.refitted
    # The new issue is found by its signature, and carries a vector from the existing model.
    p = parse_log("GGML_ASSERT: ggml.c:14307: tensor->src1 == NULL || tensor->src1->backend == GGML_BACKEND_CPU")
    hits = ix.search(p, "GGML_ASSERT tensor->src1", k=5)
    numbers = {h.number for h in hits if h.same_signature}
    assert {1846, 999999} <= numbers
    assert ix.status()["up_to_date"]


def test_removed_issue_leaves_the_index(indexed_store):
    ix = SearchIndex(indexed_store)
    doc = ix.doc_id("ggml-org/llama.cpp", 1846)
    indexed_store.conn.execute("DELETE FROM issues WHERE repo = 'ggml-org/llama.cpp' AND number = 1846")
    st = ix.build()
    assert st.removed == 1
    assert ix.doc_id("ggml-org/llama.cpp", 1846) is None
    assert indexed_store.conn.execute("SELECT COUNT(*) FROM diagnose_fts WHERE rowid = ?", (doc,)).fetchone()[0] == 0


def test_signature_match_ranks_first(indexed_store):
    ix = SearchIndex(indexed_store)
    text = (LOGS / "torch_oom.log").read_text()
    hits = ix.search(parse_log(text), text, k=5)
    assert len(hits) == 5
    assert all(h.same_signature for h in hits[:3]) and hits[0].channels["signature"] <= 2


def test_leave_one_out_finds_the_twin(indexed_store):
    # llama.cpp #2503 and #4442 report the same "CUDA error 400 ... invalid resource handle".
    ix = SearchIndex(indexed_store)
    issue = indexed_store.get_issue("ggml-org/llama.cpp", 2503)
    log = extract_log(issue.body)
    me = ix.doc_id("ggml-org/llama.cpp", 2503)
    hits = ix.search(parse_log(log), log, k=5, exclude=[me])
    assert me not in {h.doc_id for h in hits}
    assert 4442 in {h.number for h in hits}


def test_lexical_and_semantic_channels_alone(indexed_store):
    ix = SearchIndex(indexed_store)
    text = "llama.cpp metal backend produces garbage output on Apple M2 with q4_0 quantization"
    p = parse_log(text)
    assert not p.recognized and ix.signature_channel(p, 10, set()) == []
    lexical = ix.lexical_channel(p, text, 10, set())
    semantic = ix.semantic_channel(p, text, 10, set())
    assert len(lexical) == 10 and len(semantic) == 10
    repos = {indexed_store.conn.execute("SELECT repo FROM diagnose_docs WHERE doc_id = ?", (d,)).fetchone()[0]
             for d in semantic[:5]}
    assert "ggml-org/llama.cpp" in repos


def test_vector_cache_beside_the_store(indexed_store):
    ix = SearchIndex(indexed_store)
    ix.build()  # writes the .npy cache for the copied store
    files = list(Path(indexed_store.path).parent.glob("*.diagnose-g*.npy"))
    assert len(files) == 2
    ids, vecs = SearchIndex(indexed_store).matrix()
    assert vecs.shape[0] == len(ids) == 2997


def test_a_store_of_one_or_two_issues_builds_and_searches(tmp_path):
    from bugatlas.store import Store

    with Store(tmp_path / "small.db") as store:
        store.upsert_issues([Issue(repo="a/b", number=1, title="crash",
                                   body="```\nRuntimeError: CUDA error: out of memory\n```")])
        ix = SearchIndex(store)
        assert ix.build().indexed == 1  # too few issues for the semantic model: no traceback
        hits = ix.search(parse_log("RuntimeError: CUDA error: out of memory"), "CUDA error: out of memory", k=3)
        assert [h.number for h in hits] == [1]
        store.upsert_issues([Issue(repo="a/b", number=2, title="hang", body="the server hangs")])
        assert ix.build().indexed == 1 and ix.status()["up_to_date"]


def test_an_interrupted_vector_cache_write_does_not_break_later_searches(indexed_store, monkeypatch):
    """Ctrl-C (or a kill) while `index build` writes the .npy cache beside the store left half a
    file under the final name: every later `diagnose` died on it with a numpy traceback."""
    import numpy as np
    import pytest

    real_save = np.save
    calls = []

    def save_half_then_interrupt(file, arr, *args, **kwargs):
        real_save(file, arr, *args, **kwargs)
        calls.append(file)
        if len(calls) < 2:  # the vectors are written; the kill comes while writing the ids
            return
        if hasattr(file, "truncate"):  # what a kill mid-write leaves behind: half the file
            file.flush()
            file.truncate(file.tell() // 2)
        else:
            path = Path(file if str(file).endswith(".npy") else f"{file}.npy")
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        raise KeyboardInterrupt

    for old in Path(indexed_store.path).parent.glob("*.diagnose-g*.npy"):
        old.unlink()
    monkeypatch.setattr(np, "save", save_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        SearchIndex(indexed_store).build(refit=True)  # a new generation: its cache is written anew
    monkeypatch.setattr(np, "save", real_save)
    ids, vecs = SearchIndex(indexed_store).matrix()
    assert vecs.shape[0] == len(ids) == 2997
    text = "RuntimeError: CUDA error: out of memory"
    assert SearchIndex(indexed_store).search(parse_log(text), text, k=3)


def test_growth_refit_vectorizes_each_issue_once(corpus_store, tmp_path):
    """A build that grows the index past ``refit_growth`` refits: the new issues are vectorized
    once, by the new model, and the count says so (it used to add the old model's vectors too)."""
    from bugatlas.store import Store

    issues = list(corpus_store.iter_issues(repos=["vllm-project/vllm"]))[:300]
    with Store(tmp_path / "small.db") as st:
        st.upsert_issues(issues[:100])
        ix = SearchIndex(st)
        first = ix.build()
        assert first.refitted and first.vectorized == 100
        st.upsert_issues(issues[100:])  # 3x as many issues: past the 2x refit growth
        second = ix.build()
        assert second.refitted and second.indexed == 200
        assert second.vectorized == 300 == ix.status()["vectorized"]
        version = ix.status()["model"]["version"]
        assert version == 2
        stale = st.conn.execute("SELECT COUNT(*) FROM diagnose_docs WHERE model_version IS NOT ?",
                                (version,)).fetchone()[0]
        assert stale == 0
