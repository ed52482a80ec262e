// BugAtlas annotation app: autosave, pickers, keyboard shortcuts. No inline scripts (CSP).
"use strict";
(() => {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";

  // --- shared: category filter, definitions panel, clear buttons -----------------------
  const defPanel = document.getElementById("definition");
  function showDefinition(label) {
    if (!defPanel || !label) return;
    defPanel.replaceChildren();
    const h = document.createElement("b");
    h.textContent = label.dataset.cat;
    const p = document.createElement("p");
    p.textContent = label.dataset.def || "(no definition in the codebook)";
    defPanel.append(h, p);
    for (const [key, title] of [["include", "Includes"], ["exclude", "Excludes"]]) {
      if (label.dataset[key]) {
        const q = document.createElement("p");
        q.className = "muted";
        q.textContent = `${title}: ${label.dataset[key]}`;
        defPanel.append(q);
      }
    }
  }
  document.querySelectorAll(".opt-label").forEach((l) => {
    l.addEventListener("mouseenter", () => showDefinition(l));
    l.querySelector("input").addEventListener("focus", () => showDefinition(l));
  });
  const fieldsets = [...document.querySelectorAll("fieldset.dim")];
  let active = 0;
  function setActive(i) {
    if (!fieldsets.length) return;
    active = (i + fieldsets.length) % fieldsets.length;
    fieldsets.forEach((f, j) => f.classList.toggle("active", j === active));
  }
  setActive(0);
  fieldsets.forEach((fs, i) => {
    fs.addEventListener("focusin", () => setActive(i));
    const filter = fs.querySelector(".filter");
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      const items = [...fs.querySelectorAll("li")];
      items.forEach((li) => (li.hidden = !!q));
      if (!q) return;
      items.forEach((li) => {
        if (li.dataset.name.includes(q)) {
          for (let n = li; n && n !== fs; n = n.parentElement) if (n.tagName === "LI") n.hidden = false;
          li.querySelectorAll("li").forEach((c) => (c.hidden = false));
        }
      });
    });
    fs.querySelector(".clear").addEventListener("click", () => {
      fs.querySelectorAll("input.opt:checked").forEach((i) => (i.checked = false));
      fs.dispatchEvent(new Event("change", { bubbles: true }));
    });
  });
  function visibleOptions(fs) {
    return [...fs.querySelectorAll("input.opt")].filter((i) => !i.closest("li[hidden]"));
  }

  // --- arbitration page: "use" buttons copy an annotator's labels into the picker ------
  document.querySelectorAll("button.use").forEach((b) => {
    b.addEventListener("click", () => {
      const values = JSON.parse(b.dataset.values);
      const fs = document.querySelector(`fieldset.dim[data-dim="${CSS.escape(b.dataset.dim)}"]`);
      fs.querySelectorAll("input.opt").forEach((i) => (i.checked = values.includes(i.value)));
    });
  });

  // --- annotation page ---------------------------------------------------------------
  const form = document.getElementById("annot");
  const help = document.getElementById("help");
  const helpToggle = document.getElementById("help-toggle");
  if (helpToggle) helpToggle.addEventListener("click", () => (help.hidden = !help.hidden));
  if (!form) return;
  const aid = form.dataset.aid;
  const stateEl = document.getElementById("save-state");
  let client = sessionStorage.getItem("bugatlas-client");
  if (!client) {
    client = Math.random().toString(36).slice(2, 12);
    sessionStorage.setItem("bugatlas-client", client);
  }
  let status = form.dataset.status === "done" ? "done" : "draft";
  let timer = null;
  let dirty = false;
  let chain = Promise.resolve();

  function setState(text, bad) {
    stateEl.textContent = text;
    stateEl.classList.toggle("error", !!bad);
  }
  function collect() {
    const labels = {};
    fieldsets.forEach((fs) => {
      labels[fs.dataset.dim] = [...fs.querySelectorAll("input.opt:checked")].map((i) => i.value);
    });
    return { labels, note: form.note.value, unsure: form.unsure.checked, status, client };
  }
  async function save() {
    dirty = false;
    setState("saving…");
    const r = await fetch(`/api/a/${aid}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(collect()),
    });
    const j = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) {
      dirty = true;
      setState(`not saved: ${j.error}`, true);
      throw new Error(j.error);
    }
    setState(`${j.status === "done" ? "done" : "draft"} · saved ${j.created_at.slice(11, 19)} UTC`);
    form.dataset.saved = String(j.id);
  }
  function schedule() {
    dirty = true;
    setState("editing…");
    clearTimeout(timer);
    timer = setTimeout(() => { chain = chain.then(save).catch(() => {}); }, 400);
  }
  async function flush() {
    clearTimeout(timer);
    if (dirty) chain = chain.then(save);
    await chain;
  }
  async function go(url) {
    try { await flush(); window.location.href = url; } catch (e) { /* state shows the error */ }
  }
  form.addEventListener("change", schedule);
  form.note.addEventListener("input", schedule);
  document.getElementById("done").addEventListener("click", async () => {
    status = "done";
    dirty = true;
    await go(form.dataset.next);
  });
  // Leaving with unsaved edits (closing the tab, typing a URL): send them with a keepalive
  // request, which the browser completes after the page is gone.
  window.addEventListener("pagehide", () => {
    if (!dirty) return;
    clearTimeout(timer);
    fetch(`/api/a/${aid}`, {
      method: "POST", credentials: "same-origin", keepalive: true,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(collect()),
    });
  });

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && ["text", "search"].includes(t.type));
    if (typing) { if (e.key === "Escape") t.blur(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const next = document.getElementById("next");
    const prev = document.getElementById("prev");
    const fs = fieldsets[active];
    if (e.key === "j" && next) go(next.getAttribute("href"));
    else if (e.key === "k" && prev) go(prev.getAttribute("href"));
    else if (e.key === "d") document.getElementById("done").click();
    else if (e.key === "u") { form.unsure.checked = !form.unsure.checked; schedule(); }
    else if (e.key === "n") form.note.focus();
    else if (e.key === "s") { chain = chain.then(save).catch(() => {}); }
    else if (e.key === "]") setActive(active + 1);
    else if (e.key === "[") setActive(active - 1);
    else if (e.key === "/" && fs) fs.querySelector(".filter").focus();
    else if (e.key === "?") help.hidden = !help.hidden;
    else if (/^[1-9]$/.test(e.key) && fs) {
      const opt = visibleOptions(fs)[Number(e.key) - 1];
      if (opt) { opt.click(); showDefinition(opt.closest("label")); }
    } else return;
    e.preventDefault();
  });
})();
