"""The annotation web app (Starlette): blind queues, arbitration, live agreement.

Security model (a local tool reached by a small team):
* sign-in by name, limited to the names the study gave a role; a signed session cookie
  (itsdangerous via Starlette's SessionMiddleware; its secret lives in the store so sign-ins
  survive a restart), ``SameSite=Strict``;
* every POST carries a per-session CSRF token (form field or ``X-CSRF-Token`` header) and a
  cross-origin ``Origin`` is refused;
* annotators reach only their own assignments: no route takes an annotator name, and an
  assignment id of someone else's answers 403 exactly like a missing one;
* owners and arbitrators (who see everybody's labels) cannot be annotators of the sample;
* issue text is rendered by :mod:`render` (Markdown without raw HTML, sanitized by nh3);
  templates auto-escape; a strict Content-Security-Policy allows only our own script file.

Handlers are ``async`` and use the store directly: SQLite calls are short and the single event
loop serialises them, so two browsers saving at the same moment both append their rows.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bugatlas.annotate import codebook as cbm
from bugatlas.annotate.agreement import agreement, headline
from bugatlas.annotate.assign import roles
from bugatlas.annotate.gold import disagreements, finalize, item_states, record_final
from bugatlas.annotate.render import render_markdown
from bugatlas.annotate.sampling import Sample, get_sample, update_settings
from bugatlas.annotate.work import (
    ForbiddenError,
    latest_for_assignment,
    own_assignment,
    progress,
    queue_for,
    save_annotation,
)
from bugatlas.errors import BadInputError
from bugatlas.store import Store

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SUGGESTION_KINDS = ("rule", "model", "llm")


def session_secret(store: Store) -> str:
    row = store.conn.execute("SELECT value FROM ann_state WHERE key = 'session_secret'").fetchone()
    if row:
        return row[0]
    secret = secrets.token_urlsafe(48)
    with store.transaction() as conn:
        conn.execute("INSERT OR IGNORE INTO ann_state VALUES ('session_secret', ?)", (secret,))
    return store.conn.execute("SELECT value FROM ann_state WHERE key = 'session_secret'").fetchone()[0]


class AnnotationApp:
    def __init__(self, store: Store, sample: str | None = None, codebook: Any = None):
        self.store = store
        self.sample_name = get_sample(store, sample).name
        self.cb = cbm.load(codebook or get_sample(store, sample))
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["tojson_safe"] = lambda v: orjson.dumps(v).decode().replace(
            "<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    # -- helpers -----------------------------------------------------------------------
    @property
    def sample(self) -> Sample:
        return get_sample(self.store, self.sample_name)

    def user(self, request: Request) -> str | None:
        return request.session.get("user")

    def roles_of(self, name: str | None) -> set[str]:
        if not name:
            return set()
        return {role for role, names in roles(self.store, self.sample).items() if name in names}

    def require(self, request: Request, role: str) -> str:
        name = self.user(request)
        if not name:
            raise HTTPException(401, "sign in first")
        if role not in self.roles_of(name):
            raise HTTPException(403, f"{role}s only")
        return name

    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(self, request: Request, supplied: str | None) -> None:
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, "cross-origin request refused")
        expected = request.session.get("csrf")
        if not expected or not supplied or not hmac.compare_digest(expected, supplied):
            raise HTTPException(403, "missing or wrong CSRF token (reload the page)")

    def page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        name = self.user(request)
        body = self.env.get_template(template).render(
            user=name, roles=self.roles_of(name), csrf=self.csrf(request),
            sample=self.sample, codebook=self.cb, **ctx)
        return HTMLResponse(body, status_code=status)

    def dims_context(self) -> list[dict[str, Any]]:
        s = self.sample
        return [{"name": d, "multi": cbm.is_multi(self.cb, d), "levels": cbm.levels(self.cb, d),
                 "tree": cbm.tree(self.cb, d)} for d in s.dimensions]

    def issue_context(self, repo: str, number: int) -> dict[str, Any]:
        issue = self.store.get_issue(repo, number)
        comments = self.store.comments_for(repo, number)
        url = issue.html_url if issue and (issue.html_url or "").startswith("https://github.com/") else None
        return {
            "repo": repo, "number": number, "url": url,
            "title": issue.title if issue else "(issue text not in the store)",
            "state": issue.state if issue else None,
            "gh_labels": issue.labels if issue else [],
            "created_at": issue.created_at if issue else None,
            "body_html": render_markdown(issue.body if issue else ""),
            "comments": [{"author": c["author"], "created_at": c["created_at"],
                          "body_html": render_markdown(c["body"])} for c in comments],
        }

    def suggestions(self, repo: str, number: int) -> list[dict[str, Any]]:
        s = self.sample
        if not s.settings.get("show_suggestions"):
            return []
        out = []
        for lab in self.store.iter_labels(s.taxonomy, repo=repo, issue_number=number):
            if lab.source_kind in SUGGESTION_KINDS:
                out.append({"dimension": lab.dimension, "value": lab.value, "source": lab.source,
                            "kind": lab.source_kind, "confidence": lab.confidence})
        return out

    # -- routes: sign-in ---------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        name = self.user(request)
        r = self.roles_of(name)
        if not name or not r:
            return self.page(request, "login.html")
        if "annotator" in r:
            return RedirectResponse("/queue", 303)
        if "arbitrator" in r:
            return RedirectResponse("/arbitrate", 303)
        return RedirectResponse("/owner", 303)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        self.check_csrf(request, form.get("csrf"))
        name = str(form.get("name", "")).strip()
        if not self.roles_of(name):
            return self.page(request, "login.html", status=403,
                             error=f"{name or 'that name'} has no role in sample {self.sample.name}")
        request.session.clear()
        request.session["user"] = name
        request.session["csrf"] = secrets.token_urlsafe(32)  # new token after sign-in
        return RedirectResponse("/", 303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        self.check_csrf(request, form.get("csrf"))
        request.session.clear()
        return RedirectResponse("/", 303)

    # -- routes: annotators ------------------------------------------------------------
    async def queue(self, request: Request) -> Response:
        name = self.require(request, "annotator")
        rows = queue_for(self.store, self.sample, name)
        done = sum(r["status"] == "done" for r in rows)
        return self.page(request, "queue.html", queue=rows, done=done)

    async def api_queue(self, request: Request) -> Response:
        name = self.require(request, "annotator")
        return JSONResponse(queue_for(self.store, self.sample, name))

    async def item(self, request: Request) -> Response:
        name = self.require(request, "annotator")
        aid = request.path_params["aid"]
        try:
            a = own_assignment(self.store, self.sample, aid, name)
        except ForbiddenError as exc:
            raise HTTPException(403, str(exc)) from None
        rows = queue_for(self.store, self.sample, name)
        ids = [r["assignment_id"] for r in rows]
        pos = ids.index(aid)
        latest = latest_for_assignment(self.store, aid) or {
            "labels": {}, "note": "", "unsure": False, "status": "todo"}
        return self.page(
            request, "item.html", a=a, issue=self.issue_context(a["repo"], a["issue_number"]),
            dims=self.dims_context(), latest=latest, position=pos + 1, total=len(ids),
            prev_id=ids[pos - 1] if pos > 0 else None,
            next_id=ids[pos + 1] if pos + 1 < len(ids) else None,
            suggestions=self.suggestions(a["repo"], a["issue_number"]))

    async def api_item(self, request: Request) -> Response:
        name = self.require(request, "annotator")
        aid = request.path_params["aid"]
        try:
            own_assignment(self.store, self.sample, aid, name)
        except ForbiddenError as exc:
            return JSONResponse({"error": str(exc)}, 403)
        if request.method == "GET":
            return JSONResponse({"assignment_id": aid, "latest": latest_for_assignment(self.store, aid)})
        self.check_csrf(request, request.headers.get("x-csrf-token"))
        try:
            data = orjson.loads(await request.body())
            if not isinstance(data, dict):
                raise BadInputError("expected a JSON object")
            saved = save_annotation(
                self.store, self.sample, aid, name, data.get("labels") or {},
                note=str(data.get("note") or ""), unsure=bool(data.get("unsure")),
                status=str(data.get("status") or "draft"), source="app",
                client=str(data.get("client") or "")[:100], codebook=self.cb)
        except (BadInputError, orjson.JSONDecodeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(saved)

    # -- routes: owner -----------------------------------------------------------------
    async def owner(self, request: Request) -> Response:
        self.require(request, "owner")
        rnd = request.query_params.get("round", "main")
        if rnd not in ("main", "pilot", "all"):
            raise HTTPException(400, "round: main, pilot or all")
        report = agreement(self.store, self.sample, round="" if rnd == "all" else rnd, codebook=self.cb)
        states = item_states(self.store, self.sample)
        summary = {
            "items": len(states),
            "complete": sum(s["complete"] for s in states.values()),
            "to_arbitrate": sum(s["needs_arbitration"] and not s["resolved"] for s in states.values()),
            "arbitrated": sum(s["resolved"] for s in states.values()),
        }
        return self.page(request, "owner.html", report=report, rows=headline(report),
                         progress=progress(self.store, self.sample), summary=summary,
                         round=rnd, message=request.query_params.get("msg"))

    async def api_agreement(self, request: Request) -> Response:
        self.require(request, "owner")
        rnd = request.query_params.get("round", "main")
        if rnd not in ("main", "pilot", "all"):
            raise HTTPException(400, "round: main, pilot or all")
        return JSONResponse(agreement(self.store, self.sample, round="" if rnd == "all" else rnd,
                                      codebook=self.cb))

    async def owner_settings(self, request: Request) -> Response:
        self.require(request, "owner")
        form = await request.form()
        self.check_csrf(request, form.get("csrf"))
        update_settings(self.store, self.sample, show_suggestions=form.get("show_suggestions") == "on")
        return RedirectResponse("/owner?msg=settings+saved", 303)

    async def owner_finalize(self, request: Request) -> Response:
        self.require(request, "owner")
        form = await request.form()
        self.check_csrf(request, form.get("csrf"))
        c = finalize(self.store, self.sample, codebook=self.cb)
        msg = f"{c['gold_labels']} gold labels: {c['agreed']} agreed, {c['arbitrated']} arbitrated"
        if c["single_annotator"]:
            msg += f", {c['single_annotator']} labeled by one annotator only (not gold)"
        return RedirectResponse("/owner?msg=" + msg.replace(" ", "+"), 303)

    # -- routes: arbitration -------------------------------------------------------------
    async def arbitrate_list(self, request: Request) -> Response:
        self.require(request, "arbitrator")
        rows = disagreements(self.store, self.sample, include_resolved=True)
        return self.page(request, "arbitrate_list.html", rows=rows,
                         open=sum(not r["resolved"] for r in rows))

    async def arbitrate_item(self, request: Request) -> Response:
        name = self.require(request, "arbitrator")
        item_id = request.path_params["item_id"]
        rows = {r["item_id"]: r for r in disagreements(self.store, self.sample, include_resolved=True)}
        if item_id not in rows:
            raise HTTPException(404, "not in the arbitration queue")
        row = rows[item_id]
        error = None
        if request.method == "POST":
            form = await request.form()
            self.check_csrf(request, form.get("csrf"))
            labels = {d: [str(v) for v in form.getlist(f"dim:{d}") if v] for d in self.sample.dimensions}
            try:
                record_final(self.store, self.sample, item_id, name, labels,
                             note=str(form.get("note") or ""), codebook=self.cb)
            except BadInputError as exc:
                error = str(exc)
            else:
                nxt = [r for r in disagreements(self.store, self.sample) if r["item_id"] != item_id]
                return RedirectResponse(f"/arbitrate/{nxt[0]['item_id']}" if nxt else "/arbitrate", 303)
        current = {d: (row["final"][d]["labels"] if d in row["final"] else
                       next(iter(row["annotations"].values()))["labels"].get(d, [])
                       if d not in row["conflicts"] else [])
                   for d in self.sample.dimensions}
        return self.page(request, "arbitrate_item.html", row=row, error=error, current=current,
                         issue=self.issue_context(row["repo"], row["issue_number"]),
                         dims=self.dims_context())


def _error_page(app: AnnotationApp):
    async def handler(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.detail}, exc.status_code)
        if exc.status_code == 401:
            return RedirectResponse("/", 303)
        body = app.env.get_template("error.html").render(
            status=exc.status_code, detail=exc.detail, user=app.user(request), roles=set(),
            csrf=request.session.get("csrf", ""), sample=app.sample)
        return HTMLResponse(body, exc.status_code)
    return handler


class _SecurityHeaders:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()),
                            (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"),
                            (b"referrer-policy", b"no-referrer"),
                            (b"cache-control", b"no-store")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(store: Store, sample: str | None = None, *, codebook: Any = None) -> Starlette:
    """The ASGI app for one sample of the store."""
    a = AnnotationApp(store, sample, codebook)
    routes = [
        Route("/", a.home),
        Route("/login", a.login, methods=["POST"]),
        Route("/logout", a.logout, methods=["POST"]),
        Route("/queue", a.queue),
        Route("/a/{aid:int}", a.item),
        Route("/owner", a.owner),
        Route("/owner/settings", a.owner_settings, methods=["POST"]),
        Route("/owner/finalize", a.owner_finalize, methods=["POST"]),
        Route("/arbitrate", a.arbitrate_list),
        Route("/arbitrate/{item_id:int}", a.arbitrate_item, methods=["GET", "POST"]),
        Route("/api/queue", a.api_queue),
        Route("/api/a/{aid:int}", a.api_item, methods=["GET", "POST"]),
        Route("/api/agreement", a.api_agreement),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_SecurityHeaders),
                    Middleware(SessionMiddleware, secret_key=session_secret(store),
                               session_cookie="bugatlas_annotate", same_site="strict",
                               max_age=14 * 24 * 3600)],
        exception_handlers={HTTPException: _error_page(a)},
    )
    app.state.annotation = a
    return app


def serve(store: Store, sample: str | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          codebook: Any = None) -> None:
    import uvicorn

    uvicorn.run(create_app(store, sample, codebook=codebook), host=host, port=port,
                log_level="warning")
