"""End to end in a real headless Chromium (Debian's, driven by Playwright): two annotators
label the same sample of the shared corpus with the liu2025 codebook, with disagreements; the
owner's agreement page shows Cohen's kappa equal to scikit-learn's and alpha equal to the
krippendorff package's; the arbitrator resolves every conflict; two browsers saving the same
issue at once are both kept; a hostile issue body runs no script.

Set BUGATLAS_SCREENSHOTS=DIR to save screenshots of the main screens (docs/annotate/)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import krippendorff
import pytest
from sklearn.metrics import cohen_kappa_score

from bugatlas.annotate import assign, disagreements, draw_sample, queue_for
from bugatlas.annotate.work import history, latest_annotations
from bugatlas.store import Issue, Store

from .conftest import HOSTILE_BODY, LiveServer

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("BUGATLAS_SCREENSHOTS")

# Per item position in the sample: (symptom set, root cause, phase) for alice and for bob.
SYM = [["Crash"], ["Crash"], ["Repetition"], ["System Hang"], ["Abnormal Performance"], ["Crash", "Silent Error"]]
RC = ["Incompatible Version", "Misused API", "Incorrect Algorithm Implementation", "Concurrency Issue",
      "Incorrect Resource Deallocation", "Incompatible Version"]
PH = ["Engine Setup", "Inference/Serving", "Inference/Serving", "Inference/Serving", "Model Conversion",
      "Engine Setup"]
BOB_SYM = {1: ["Feature Failure"], 4: ["Abnormal Performance", "Crash"]}
BOB_PH = {2: "Engine Setup", 4: "Inference/Serving"}


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium chromium-driver (.ci/run does)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def shot(page, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)


def sign_in(context, url, name):
    page = context.new_page()
    page.goto(url + "/")
    page.fill("#name", name)
    page.click("#signin")
    page.wait_for_load_state()
    return page


def pick(page, dim, value):
    page.click(f'fieldset[data-dim="{dim}"] label[data-cat="{value}"]')


@pytest.fixture()
def study_db(corpus_store):
    store = corpus_store
    store.upsert_issues([Issue(repo="vllm-project/vllm", number=999999, title="Hostile <b>issue</b>",
                               body=HOSTILE_BODY, html_url="javascript:alert(1)")])
    s = draw_sample(store, "liu2025", size=5, seed=21, dimensions=["symptom", "root_cause", "phase"])
    store.conn.execute("INSERT INTO ann_items (sample_id, repo, issue_number, stratum, position) "
                       "VALUES (?, 'vllm-project/vllm', 999999, 'vllm-project/vllm', 5)", (s.id,))
    assign(store, s, ["alice", "bob"], k=2, arbitrator=["carol"], owner=["dana"])
    return store.path


def test_two_annotators_agreement_arbitration(browser, study_db):
    server = LiveServer(study_db)
    try:
        _scenario(browser, server.url, study_db)
    finally:
        server.stop()


def _scenario(browser, url, db):
    check = Store(db)
    s = check.query("SELECT * FROM ann_samples")[0]
    from bugatlas.annotate.sampling import get_sample
    sample = get_sample(check, s["name"])
    items = check.query("SELECT id, position FROM ann_items WHERE sample_id = ? ORDER BY position", (sample.id,))
    pos_of = {r["id"]: i for i, r in enumerate(items)}
    alerts = []

    ctx_a = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx_b = browser.new_context(viewport={"width": 1400, "height": 900})
    for ctx in (ctx_a, ctx_b):
        ctx.on("page", lambda p: p.on("dialog", lambda d: (alerts.append(d.message), d.dismiss())))
    pa = sign_in(ctx_a, url, "alice")
    shot(pa, "queue")
    assert pa.url.endswith("/queue")
    pb = sign_in(ctx_b, url, "bob")

    for who, page in (("alice", pa), ("bob", pb)):
        for q in queue_for(check, sample, who):
            i = pos_of[q["item_id"]]
            page.goto(f"{url}/a/{q['assignment_id']}")
            if q["issue_number"] == 999999:
                assert page.evaluate("window.__pwned === undefined")
                assert page.locator("#issue-body details.log").count() == 1
                if who == "alice":
                    shot(page, "annotate-hostile-issue")
            sym = BOB_SYM.get(i, SYM[i]) if who == "bob" else SYM[i]
            for v in sym:
                pick(page, "symptom", v)
            pick(page, "root_cause", RC[i])
            phase = BOB_PH.get(i, PH[i]) if who == "bob" else PH[i]
            if who == "bob":  # keyboard: ] to the phase dimension, then its n-th option
                for _ in range(3):
                    if page.evaluate("document.querySelector('fieldset.dim.active').dataset.dim") == "phase":
                        break
                    page.keyboard.press("]")
                opts = page.locator('fieldset[data-dim="phase"] input.opt').evaluate_all("e => e.map(x => x.value)")
                page.keyboard.press(str(opts.index(phase) + 1))
            else:
                pick(page, "phase", phase)
            page.fill("#note", f"{who} thinks so")
            if who == "alice" and i == 0:
                page.wait_for_selector("#save-state:has-text('saved')")  # autosave, before Done
                shot(page, "annotate")
            if who == "bob":
                page.keyboard.press("Escape")  # leave the note field, then "d": done, next
                page.keyboard.press("d")
            else:
                page.click("#done")
            page.wait_for_url(lambda u, here=f"/a/{q['assignment_id']}": not u.endswith(here))
    assert alerts == []

    rows = latest_annotations(check, sample, done_only=True)
    assert len(rows) == 12
    by = {}
    for r in rows:
        by.setdefault(r["item_id"], {})[r["annotator"]] = r["labels"]
    ids = sorted(by)
    ph_a = [by[i]["alice"]["phase"][0] for i in ids]
    ph_b = [by[i]["bob"]["phase"][0] for i in ids]
    assert ph_a != ph_b  # there are disagreements
    sym_a = [" | ".join(by[i]["alice"]["symptom"]) for i in ids]
    sym_b = [" | ".join(by[i]["bob"]["symptom"]) for i in ids]

    # The owner's live agreement page.
    ctx_o = browser.new_context(viewport={"width": 1400, "height": 1000})
    po = sign_in(ctx_o, url, "dana")
    assert po.url.endswith("/owner")
    assert "6 issues · 6 finished by all their annotators · 3 waiting for arbitration" in po.text_content("body")
    def cell(dim, level, sel):
        return po.locator(f'#agreement tr[data-dimension="{dim}"][data-level="{level}"] {sel}').first.get_attribute("data-value")
    assert float(cell("phase", "phase", ".kappa")) == pytest.approx(cohen_kappa_score(ph_a, ph_b), abs=1e-9)
    assert float(cell("symptom", "unexpected_output", ".kappa")) is not None
    codes = {v: k for k, v in enumerate(sorted(set(sym_a) | set(sym_b)))}
    assert float(cell("symptom", "unexpected_output", ".kappa")) == pytest.approx(
        cohen_kappa_score(sym_a, sym_b), abs=1e-9)
    alpha = krippendorff.alpha(reliability_data=[[codes[x] for x in sym_a], [codes[x] for x in sym_b]],
                               level_of_measurement="nominal")
    assert float(cell("symptom", "unexpected_output", ".alpha")) == pytest.approx(alpha, abs=1e-9)
    pcodes = {v: k for k, v in enumerate(sorted(set(ph_a) | set(ph_b)))}
    palpha = krippendorff.alpha(reliability_data=[[pcodes[x] for x in ph_a], [pcodes[x] for x in ph_b]],
                                level_of_measurement="nominal")
    assert float(cell("phase", "phase", ".alpha")) == pytest.approx(palpha, abs=1e-9)
    shot(po, "owner-agreement")

    # The arbitrator resolves every conflict, taking alice's labels where they differ.
    open_before = disagreements(check, sample)
    assert {pos_of[d["item_id"]] for d in open_before} == {1, 2, 4}
    ctx_c = browser.new_context(viewport={"width": 1400, "height": 900})
    pc = sign_in(ctx_c, url, "carol")
    assert pc.url.endswith("/arbitrate")
    shot(pc, "arbitration-queue")
    pc.click("a.arb-open")
    first = True
    while "/arbitrate/" in pc.url:
        for b in pc.locator("#annotations tr.conflict button.use").all():
            if b.evaluate("b => b.closest('td').cellIndex") == 1:  # alice's column
                b.click()
        if first:
            shot(pc, "arbitrate")
            first = False
        pc.click("#final-save")
        pc.wait_for_load_state()
    assert disagreements(check, sample) == []
    po.goto(url + "/owner")
    po.click("#finalize")
    po.wait_for_load_state()
    assert "gold labels" in po.text_content("body")
    gold = {(g.repo, g.issue_number) for g in check.iter_labels("liu2025", source_kind="human", source="gold")}
    assert len(gold) == 6
    for d in open_before:
        phase = {g.value for g in check.iter_labels("liu2025", dimension="phase", source="gold",
                                                  repo=d["repo"], issue_number=d["issue_number"])}
        assert phase == set(d["annotations"]["alice"]["labels"]["phase"])

    # Two browsers of the same annotator save the same issue at the same moment: both kept.
    ctx_a2 = browser.new_context()
    pa2 = sign_in(ctx_a2, url, "alice")
    aid = queue_for(check, sample, "alice")[0]["assignment_id"]
    before = len(history(check, aid))
    pa.goto(f"{url}/a/{aid}")
    pa2.goto(f"{url}/a/{aid}")
    pa.fill("#note", "from the first browser")
    pa2.fill("#note", "from the second browser")
    pa.wait_for_selector("#save-state:has-text('saved')")
    pa2.wait_for_selector("#save-state:has-text('saved')")
    notes = [h["note"] for h in history(check, aid)[before:]]
    assert "from the first browser" in notes and "from the second browser" in notes
    clients = {h["client"] for h in history(check, aid)[before:]}
    assert len(clients) == 2
    shot(pa, "concurrent")
    # Leaving the page right after typing (before the autosave delay) still saves.
    pa.goto(f"{url}/a/{aid}")
    pa.fill("#note", "typed and left at once")
    pa.goto(f"{url}/queue")
    deadline = time.monotonic() + 10
    while history(check, aid)[-1]["note"] != "typed and left at once" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert history(check, aid)[-1]["note"] == "typed and left at once"
    for ctx in (ctx_a, ctx_b, ctx_o, ctx_c, ctx_a2):
        ctx.close()
    check.close()
