"""The annotation app over HTTP (Starlette's test client): sign-in, CSRF, blindness, XSS,
suggestions, restart. The browser-level scenario is in test_e2e_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from bugatlas.annotate import assign, draw_sample, queue_for, save_annotation
from bugatlas.annotate.app import create_app
from bugatlas.store import Label, Store


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" content="([^"]+)"', html).group(1)


def login(client: TestClient, name: str) -> str:
    token = _csrf(client.get("/").text)
    r = client.post("/login", data={"name": name, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/", follow_redirects=True)
    return _csrf(page.text)


@pytest.fixture()
def study(small_store, toy_codebook):
    s = draw_sample(small_store, toy_codebook, size=8, seed=11)
    # the hostile issue is in every sample: add it if the draw missed it
    if not small_store.query("SELECT 1 FROM ann_items WHERE sample_id = ? AND issue_number = 100", (s.id,)):
        small_store.conn.execute("INSERT INTO ann_items (sample_id, repo, issue_number, stratum, position) "
                                 "VALUES (?, 'vllm-project/vllm', 100, 'vllm-project/vllm', -1)", (s.id,))
    assign(small_store, s, ["ann", "ben"], k=2, arbitrator=["arb"], owner=["own"])
    return s


def client_for(store, toy_codebook):
    return TestClient(create_app(store, codebook=toy_codebook), base_url="http://127.0.0.1:8000")


def test_sign_in_only_known_names_and_csrf(small_store, toy_codebook, study):
    c = client_for(small_store, toy_codebook)
    token = _csrf(c.get("/").text)
    assert c.post("/login", data={"name": "ann"}, follow_redirects=False).status_code == 403
    assert c.post("/login", data={"name": "mallory", "csrf": token}).status_code == 403
    assert c.get("/queue", follow_redirects=False).status_code == 303  # not signed in
    tok = login(c, "ann")
    aid = queue_for(small_store, study, "ann")[0]["assignment_id"]
    body = {"labels": {"symptom": ["Crash"]}, "status": "draft"}
    assert c.post(f"/api/a/{aid}", json=body).status_code == 403               # no token
    assert c.post(f"/api/a/{aid}", json=body, headers={"X-CSRF-Token": "x"}).status_code == 403
    r = c.post(f"/api/a/{aid}", json=body, headers={"X-CSRF-Token": tok, "Origin": "http://evil.example"})
    assert r.status_code == 403
    r = c.post(f"/api/a/{aid}", json=body, headers={"X-CSRF-Token": tok})
    assert r.status_code == 200 and r.json()["labels"]["symptom"] == ["Crash"]
    assert c.post(f"/api/a/{aid}", json={"labels": {"symptom": "Nope"}}, headers={"X-CSRF-Token": tok}).status_code == 400
    headers = c.get("/queue").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    fresh = client_for(small_store, toy_codebook)
    assert "samesite=strict" in fresh.get("/").headers["set-cookie"].lower()


def test_blind_api_refuses_other_annotators_work(small_store, toy_codebook, study):
    ben_aid = queue_for(small_store, study, "ben")[0]["assignment_id"]
    save_annotation(small_store, study, ben_aid, "ben", {"symptom": "System Hang"}, note="ben secret",
                    codebook=toy_codebook)
    c = client_for(small_store, toy_codebook)
    tok = login(c, "ann")
    assert c.get(f"/api/a/{ben_aid}").status_code == 403
    assert c.post(f"/api/a/{ben_aid}", json={"labels": {}}, headers={"X-CSRF-Token": tok}).status_code == 403
    assert c.get(f"/a/{ben_aid}").status_code == 403
    assert c.get("/api/agreement").status_code == 403
    assert c.get("/arbitrate").status_code == 403
    assert c.get("/owner").status_code == 403
    assert c.get("/api/a/999999").status_code == 403
    # Nothing ann can reach shows ben's labels or note.
    for q in queue_for(small_store, study, "ann"):
        page = c.get(f"/a/{q['assignment_id']}").text + c.get(f"/api/a/{q['assignment_id']}").text
        assert "ben secret" not in page
    assert "ben" not in c.get("/api/queue").text
    own = client_for(small_store, toy_codebook)
    login(own, "own")
    assert own.get("/api/agreement").status_code == 200
    assert own.get("/queue").status_code == 403


class _Elements(HTMLParser):
    """Every element and attribute the browser would build from the page."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def test_hostile_issue_body_is_inert(small_store, toy_codebook, study):
    c = client_for(small_store, toy_codebook)
    login(c, "ann")
    aid = next(q["assignment_id"] for q in queue_for(small_store, study, "ann") if q["issue_number"] == 100)
    page = c.get(f"/a/{aid}").text
    parsed = _Elements()
    parsed.feed(page)
    scripts = [a for t, a in parsed.elements if t == "script"]
    assert scripts == [{"src": "/static/app.js"}]
    assert not [(t, k) for t, a in parsed.elements for k in a if k.lower().startswith("on")]
    assert not [a for t, a in parsed.elements
                if any((a.get(k) or "").strip().lower().startswith("javascript:") for k in ("href", "src"))]
    assert not [t for t, _ in parsed.elements if t in {"img", "iframe", "object", "embed"}]
    body = page.split('id="issue-body">', 1)[1].split("</article>", 1)[0]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in body  # readable as text
    assert '<details class="log">' in body  # the 62-line traceback is folded


def test_suggestions_off_by_default_then_on(small_store, toy_codebook, study):
    item = next(q for q in queue_for(small_store, study, "ann"))
    small_store.add_labels([Label(repo=item["repo"], issue_number=item["issue_number"], taxonomy="toy",
                                  dimension="symptom", value="Crash", source_kind="rule",
                                  source="rules:v1", confidence=0.9)])
    c = client_for(small_store, toy_codebook)
    login(c, "ann")
    assert "Machine suggestions" not in c.get(f"/a/{item['assignment_id']}").text
    o = client_for(small_store, toy_codebook)
    tok = login(o, "own")
    assert o.post("/owner/settings", data={"show_suggestions": "on"}).status_code == 403  # no token
    o.post("/owner/settings", data={"show_suggestions": "on", "csrf": tok})
    page = c.get(f"/a/{item['assignment_id']}").text
    assert "Machine suggestions" in page and "rules:v1" in page


def test_session_and_work_survive_restart(tmp_path, small_store, toy_codebook, study):
    c = client_for(small_store, toy_codebook)
    tok = login(c, "ann")
    aid = queue_for(small_store, study, "ann")[0]["assignment_id"]
    c.post(f"/api/a/{aid}", json={"labels": {"component": ["Kernel", "Scheduler"]}, "note": "n1"},
           headers={"X-CSRF-Token": tok})
    cookies = dict(c.cookies)
    path = small_store.path
    with Store(path) as again:  # a new server process on the same file
        c2 = TestClient(create_app(again, codebook=toy_codebook), base_url="http://127.0.0.1:8000",
                        cookies=cookies)
        got = c2.get(f"/api/a/{aid}").json()
        assert got["latest"]["labels"]["component"] == ["Kernel", "Scheduler"] and got["latest"]["note"] == "n1"
        assert 'checked' in c2.get(f"/a/{aid}").text


@pytest.mark.parametrize("taxonomy", ["liu2025", "yu2026", "yu2026-artifact"])
def test_pickers_render_every_category_of_published_codebooks(small_store, taxonomy):
    from bugatlas.taxonomy import load_codebook

    cb = load_codebook(taxonomy)
    s = draw_sample(small_store, taxonomy, size=2, seed=1, name=taxonomy)
    assign(small_store, s, ["ann"], k=1)
    c = TestClient(create_app(small_store, taxonomy), base_url="http://127.0.0.1:8000")
    login(c, "ann")
    page = c.get(f"/a/{queue_for(small_store, s, 'ann')[0]['assignment_id']}").text
    parsed = _Elements()
    parsed.feed(page)
    for dim in s.dimensions:
        values = {a["value"] for t, a in parsed.elements if t == "input" and a.get("name") == f"dim:{dim}"}
        assert values == {c.name for c in cb.dimension(dim).categories.values()}
        kinds = {a["type"] for t, a in parsed.elements if t == "input" and a.get("name") == f"dim:{dim}"}
        assert kinds == {"checkbox" if cb.dimension(dim).multi_label else "radio"}


def test_unknown_round_is_refused_not_an_empty_agreement(small_store, toy_codebook, study):
    from bugatlas.annotate import agreement
    from bugatlas.errors import BadInputError

    with pytest.raises(BadInputError, match="--round mian"):
        agreement(small_store, study, round="mian", codebook=toy_codebook)
    c = client_for(small_store, toy_codebook)
    login(c, "own")
    assert c.get("/api/agreement?round=pilot").status_code == 200
    assert c.get("/api/agreement?round=mian").status_code == 400
    assert c.get("/owner?round=mian").status_code == 400
