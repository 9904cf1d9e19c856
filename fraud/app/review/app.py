"""The analyst review app (`fraud review`): the queue of open cases, a case's evidence and the verdict form, the
admin's view, and the page behind a customer's "was this you?" link. Server-rendered (Jinja2, autoescaped), no
script at all, one stylesheet served by the app itself. docs/review.md describes it.

    GET  /queue[?page=N]            open cases, risk then age                       analyst, admin
    GET  /cases/<card token>:<day>  the case: transactions, reasons, history...    analyst, admin
    POST /cases/<id>/verdict        fraud | genuine | unsure (+ note), then the next open case
    GET  /admin                     users and the latest verdicts                   admin
    GET  /login, POST /login, POST /logout
    GET  /answer?alert=&answer=&expires=&sig=   a customer's link: shows what it will record, changes nothing
    POST /answer                    records the answer once                         no sign-in: the link is the key
    GET  /health                    200 when the database answers
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from asgi_csrf import asgi_csrf
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import Engine, text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fraud.app.review.actions import (
    MAX_NOTE,
    CaseClosed,
    CaseNotFound,
    alert_view,
    record_answer,
    record_case_verdict,
)
from fraud.app.review.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    LOGIN_LIMIT,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Forbidden,
    LoginLimiter,
    SecurityHeaders,
    SignInRequired,
    require_role,
    safe_next,
    session_username,
    signed_in,
    signed_out,
)
from fraud.core.settings import Settings
from fraud.core.storage import object_store
from fraud.db.cases import CaseDetail, CaseTransaction, case_detail, cases, queue_page, recent_verdicts
from fraud.db.labels import Verdict
from fraud.db.users import Role, User, authenticate, get_user, list_users
from fraud.features.catalog import CATEGORY_FEATURES, FEATURE_NAMES, FEATURE_VERSION
from fraud.features.phrases import CATEGORY_WORDS, describe_reasons
from fraud.model.registry import latest_version, promoted_version
from fraud.outreach.answers import LinkRefused, verify
from fraud.outreach.notify import display_merchant
from fraud.serving.clients import client_address, trusted_networks

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 25


class EveryPath:
    """asgi-csrf's `always_protect` as "every path": a POST needs the token even when it carries no cookie."""

    def __contains__(self, path: object) -> bool:
        return True


# --- formatting -------------------------------------------------------------------------------------------------


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _age(hours: float) -> str:
    if hours < 1:
        return "under 1 h"
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.3g}"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)  # every template, any name
    env.filters.update(money=_money, when=_when, age=_age, number=_number, merchant=display_merchant)
    env.filters["category"] = lambda name: CATEGORY_WORDS.get(name, name)
    env.filters["score"] = lambda value: "" if value is None else f"{value:.3f}"
    env.filters["pct"] = lambda value: "–" if value is None else f"{value:.1%}"
    return env


# --- reasons and features on a case page --------------------------------------------------------------------------


def reasons_in_words(reasons: list[dict], features: list[float] | None, version: str | None) -> list[str] | None:
    """The reasons as readable phrases (fraud/features/phrases.py), when the transaction's feature vector of the
    catalogue's version is stored; else None, and the page shows the raw reasons with their contributions."""
    if features is None or version != FEATURE_VERSION or len(features) != len(FEATURE_NAMES):
        return None
    return describe_reasons(reasons, features) or None


@dataclass(frozen=True)
class TransactionView:
    row: CaseTransaction
    words: list[str] | None  # the reasons in words, or None: `raw` is shown
    raw: list[str]  # "feature +0.412"
    features: list[tuple[str, str]]  # (name, value) of the numeric features (the category is on the page already)


def transaction_views(detail: CaseDetail) -> list[TransactionView]:
    views = []
    for t in detail.transactions:
        raw = [
            f"{r.get('feature', '?')} {float(r['contribution']):+.3f}"
            if isinstance(r.get("contribution"), int | float)
            else str(r.get("feature", "?"))
            for r in t.top_reasons
        ]
        named = []
        if t.features is not None and t.feature_version == FEATURE_VERSION and len(t.features) == len(FEATURE_NAMES):
            named = [
                (name, _number(value))
                for name, value in zip(FEATURE_NAMES, t.features, strict=True)
                if name not in CATEGORY_FEATURES
            ]
        words = reasons_in_words(t.top_reasons, t.features, t.feature_version)
        views.append(TransactionView(t, words, raw, named))
    return views


# --- the app ----------------------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    trusted_header: str | None = None,
    login_limit: str = LOGIN_LIMIT,
) -> FastAPI:
    """The review app. `trusted_header`: take the user from this request header, set by an authenticating proxy
    (off by default: password sign-in); docs/review.md#oidc-in-aws."""
    from fraud.db.engine import get_engine
    from fraud.db.roles import DbRole

    settings = settings or Settings()
    engine = engine or get_engine(settings, role=DbRole.REVIEW)
    secure = settings.review_base_url.lower().startswith("https://")
    answer_key = settings.review_signing_key("answer-link")
    limiter = LoginLimiter(login_limit)
    proxies = trusted_networks(settings.trusted_proxies)
    env = environment()
    templates = Jinja2Templates(env=env)
    models = object_store(settings, settings.models_bucket)
    header = trusted_header.lower() if trusted_header else None

    app = FastAPI(title="fraud-platform review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def current_user(request: Request) -> User | None:
        name = request.headers.get(header) if header else session_username(request)
        user = get_user(engine, name.strip()) if name and name.strip() else None
        return user if user is not None and user.active else None

    def promoted() -> str | None:
        return latest_version(models, settings.model_name)

    def page(request: Request, name: str, status: int = 200, headers: dict | None = None, **context) -> Response:
        context.setdefault("user", None)
        context.update(
            csrf=lambda: request.scope["csrftoken"](),
            csrf_field=CSRF_FIELD,
            flash=request.session.pop("flash", None),
            password_sign_in=header is None,
        )
        return templates.TemplateResponse(request, name, context, status_code=status, headers=headers)

    def message(request: Request, status: int, title: str, text_: str, user: User | None = None, **extra) -> Response:
        return page(request, "message.html", status, title=title, message=text_, user=user, **extra)

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _: SignInRequired) -> Response:
        if header:
            return message(
                request,
                401,
                "Not signed in",
                "The sign-in service did not say who you are, or you have no active account in this app: ask an "
                "admin to add you (fraud users add).",
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        next_ = target if request.method == "GET" else "/queue"
        return RedirectResponse(f"/login?{urlencode({'next': next_})}", status_code=303)

    @app.exception_handler(Forbidden)
    def forbidden(request: Request, _: Forbidden) -> Response:
        return message(request, 403, "Not allowed", "This page is for admins.", current_user(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Not allowed"}
        return message(request, error.status_code, titles.get(error.status_code, "Error"), str(error.detail))

    # --- sign in and out --------------------------------------------------------------------------------------

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as problem:  # reported with its kind only
            return JSONResponse({"status": "unavailable", "reason": type(problem).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/login")
    def login_form(request: Request, next: str = "/queue") -> Response:
        if header or current_user(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return page(request, "login.html", next=safe_next(next), username="")

    @app.post("/login")
    def login(
        request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/queue")
    ) -> Response:
        if header:
            return RedirectResponse("/queue", status_code=303)
        username = username.strip()[:200]
        refused = limiter.attempt(username, client_address(request, proxies))
        if refused is not None:
            return page(
                request,
                "login.html",
                429,
                headers={"Retry-After": str(refused.retry_after)},
                next=safe_next(next),
                username=username,
                error=f"Too many sign-in attempts for this username or from your address. Wait "
                f"{refused.retry_after} seconds, then try again.",
            )
        user = authenticate(engine, username, password) if username and password else None
        if user is None:
            return page(
                request, "login.html", 401, next=safe_next(next), username=username, error="Wrong username or password."
            )
        signed_in(request, user)
        return RedirectResponse(safe_next(next), status_code=303)

    @app.post("/logout")
    def logout(request: Request) -> Response:
        signed_out(request)
        request.session["flash"] = "You are signed out."
        return RedirectResponse("/login", status_code=303)

    # --- the queue, a case, a verdict -------------------------------------------------------------------------

    @app.get("/queue")
    def queue(request: Request) -> Response:
        user = require_role(current_user(request))
        try:
            number = max(1, min(int(request.query_params.get("page", "1")), 1_000_000))
        except ValueError:  # a hand-typed ?page=abc: the first page
            number = 1
        model_version = promoted()
        if model_version is None:
            return page(request, "queue.html", user=user, model_version=None, queue=None, page_number=1, pages=1)
        found = queue_page(engine, model_version, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        pages = max(1, -(-found.total // PAGE_SIZE))
        return page(
            request,
            "queue.html",
            user=user,
            model_version=model_version,
            queue=found,
            page_number=number,
            pages=pages,
            quote=quote,
        )

    def show_case(request: Request, user: User, case_id: str, status: int = 200, error: str | None = None):
        model_version = promoted()
        detail = case_detail(engine, model_version, case_id) if model_version else None
        if detail is None:
            return message(request, 404, "No such case", "There is no case with this id for the promoted model.", user)
        return page(
            request,
            "case.html",
            status,
            user=user,
            model_version=model_version,
            detail=detail,
            views=transaction_views(detail),
            error=error,
            max_note=MAX_NOTE,
            quote=quote,
        )

    @app.get("/cases/{case_id}")
    def case_page(request: Request, case_id: str) -> Response:
        return show_case(request, require_role(current_user(request)), case_id)

    @app.post("/cases/{case_id}/verdict")
    def give_verdict(request: Request, case_id: str, verdict: str = Form(""), note: str = Form("")) -> Response:
        user = require_role(current_user(request))
        try:
            chosen = Verdict(verdict)
        except ValueError:
            return show_case(request, user, case_id, 422, "Choose fraud, genuine or unsure.")
        note = note.strip()
        if len(note) > MAX_NOTE:
            return show_case(request, user, case_id, 422, f"The note is too long (at most {MAX_NOTE} characters).")
        model_version = promoted()
        if model_version is None:
            return message(request, 409, "No model", "No model is promoted: there are no cases.", user)
        try:
            recorded = record_case_verdict(engine, model_version, case_id, chosen, user.username, note)
        except CaseNotFound:
            return message(request, 404, "No such case", "There is no case with this id for the promoted model.", user)
        except CaseClosed:
            return show_case(
                request,
                user,
                case_id,
                409,
                "This case was closed before your verdict arrived (see who closed it below): nothing was recorded.",
            )
        count = recorded.transactions
        request.session["flash"] = (
            f"Recorded “{recorded.verdict.value}” on {count} transaction{'s' if count != 1 else ''} of card "
            f"•••• {recorded_last4(recorded.case.card_token)}."
        )
        following = next((c for c in cases(engine, model_version, limit=2) if c.case_id != case_id), None)
        target = f"/cases/{quote(following.case_id)}" if following else "/queue"
        return RedirectResponse(target, status_code=303)

    def recorded_last4(card_token: str) -> str:
        with engine.connect() as connection:
            return connection.execute(
                text("SELECT last4 FROM dim_card WHERE card_token = :c"), {"c": card_token}
            ).scalar_one()

    @app.get("/admin")
    def admin(request: Request) -> Response:
        user = require_role(current_user(request), Role.ADMIN)
        return page(request, "admin.html", user=user, users=list_users(engine), verdicts=recent_verdicts(engine))

    # --- customers' answers -----------------------------------------------------------------------------------

    def checked_link(request: Request, alert: str, answer: str, expires: str, sig: str):
        try:
            signed = verify(answer_key, alert, answer, expires, sig, datetime.now(UTC))
        except LinkRefused as refused:
            expired = refused.reason == "expired"
            return None, page(
                request,
                "answer.html",
                410 if expired else 400,
                state="expired" if expired else "invalid",
            )
        view = alert_view(engine, signed.alert_id)
        if view is None:
            return None, page(request, "answer.html", 404, state="invalid")
        return (signed, view), None

    @app.get("/answer")
    def answer_page(request: Request, alert: str = "", answer: str = "", expires: str = "", sig: str = "") -> Response:
        found, refusal = checked_link(request, alert, answer, expires, sig)
        if refusal is not None:
            return refusal
        signed, view = found
        state = "answered" if view.answered else "confirm"
        link = {"alert": alert, "answer": answer, "expires": expires, "sig": sig}
        return page(request, "answer.html", state=state, view=view, answer=signed.answer.value, link=link)

    @app.post("/answer")
    def answer_given(
        request: Request, alert: str = Form(""), answer: str = Form(""), expires: str = Form(""), sig: str = Form("")
    ) -> Response:
        found, refusal = checked_link(request, alert, answer, expires, sig)
        if refusal is not None:
            return refusal
        signed, view = found
        if not record_answer(engine, signed):
            view = alert_view(engine, signed.alert_id)
            # a second click: said plainly, not as an error (the customer did nothing wrong)
            return page(request, "answer.html", state="answered", view=view, answer=view.answered)
        return page(request, "answer.html", state="thanks", view=view, answer=signed.answer.value)

    # --- middleware, innermost first --------------------------------------------------------------------------

    async def csrf_failed(scope, send, message_id) -> None:
        body = env.get_template("message.html").render(
            title="Form refused",
            message="This form was not sent from a page of this app, or it has expired (its CSRF token is missing or "
            "does not match). Nothing was changed. Go back, reload the page and try again.",
            user=None,
            flash=None,
            password_sign_in=header is None,
        )
        await send(
            {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/html; charset=utf-8")]}
        )
        await send({"type": "http.response.body", "body": body.encode()})

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.review_signing_key("session").hex(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=secure,
    )
    app.add_middleware(
        asgi_csrf,
        cookie_name=CSRF_COOKIE,
        signing_secret=settings.review_signing_key("csrf").hex(),
        always_protect=EveryPath(),
        cookie_secure=secure,
        send_csrf_failed=csrf_failed,
    )
    app.add_middleware(SecurityHeaders, secure=secure)
    return app


def serve(settings: Settings, port: int, *, trusted_header: str | None = None, verbose: bool = False, say=print):
    """Run the app with uvicorn on 127.0.0.1 (loopback only: put a TLS proxy in front to expose it)."""
    import uvicorn

    from fraud.db.engine import get_engine
    from fraud.db.migrate import upgrade
    from fraud.db.roles import DbRole

    engine = get_engine(settings, role=DbRole.REVIEW)
    upgrade(engine)
    application = create_app(settings, engine, trusted_header=trusted_header)
    users = [u for u in list_users(engine) if u.active]
    version = promoted_version(settings)
    say(f"model: {version or 'none promoted yet (the queue stays empty until one is)'}")
    if trusted_header:
        say(f"identity: the {trusted_header} header of the proxy in front (no password sign-in)")
    elif not users:
        say("no users yet: add one with `fraud users add NAME --role analyst` (or admin)")
    say(f"listening on http://127.0.0.1:{port}")
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=port,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        proxy_headers=False,  # the client address is the socket peer, or what fraud/serving/clients.py allows
    )
