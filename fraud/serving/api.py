"""The real-time scoring API (`fraud serve`): one raw Sparkov transaction in, its score, flag, top reasons and
model version out, recorded in the decision log before it is answered; the same path as the scorer Lambda's
real-time event (`fraud.serving.realtime`, request schema `fraud.serving.request`).

    POST /v1/score   bearer token; body = the transaction as JSON (at most 16 KiB)
    GET  /health     200 {"status": "ok"} when the database answers and a model is promoted, else 503; with the
                     bearer token also the model version (or the failure's kind)
    GET  /openapi.json, /docs (Swagger UI, its assets served from the installed swagger-ui-bundle: works offline)

Every bad request gets a 4xx with a message, never a 500: 400 body is not JSON, 401 token missing or wrong,
409 trans_num already decided for another transaction, 413 body too large, 422 missing field / wrong type /
a value the ETL would quarantine, with its reason (`detail[].type`: pydantic's, or fraud/ingest/validation.py's),
429 over a rate limit (with Retry-After), 503 no promoted model yet or the database unreachable
(nothing recorded). Error bodies never echo the submitted values.

Rate limits: the token is checked first; an authenticated request counts against the token's limit
(`rate_limit`), anything else (a missing or wrong token, an anonymous /health) against a stricter limit per client
address (`ANONYMOUS_RATE_LIMIT`), so a flood of guesses or health checks never slows the token's holder. The client
address is the socket peer unless FRAUD_TRUSTED_PROXIES names it (fraud/serving/clients.py).

The token is the setting `FRAUD_API_TOKEN`; locally, when it is unset, one is generated once into
`FRAUD_HOME/secrets/api_token` (mode 0600). In AWS the same handler sits behind a Lambda function URL with
IAM auth instead (`lambdas/scorer`).
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from fraud.core.settings import Settings
from fraud.core.storage import private_secret
from fraud.features.online import InvalidTransaction
from fraud.serving.batch import NoPromotedModel
from fraud.serving.clients import client_address, trusted_networks
from fraud.serving.realtime import DecisionConflict, RealtimeScorer
from fraud.serving.request import RawTransaction

MAX_BODY_BYTES = 16 * 1024
DEFAULT_RATE_LIMIT = 200.0  # authenticated requests per second per token, sustained
DEFAULT_BURST = 400
# unauthenticated requests (failed auth, anonymous /health) per second per client address: a load balancer's
# health check every few seconds fits, a token-guessing loop does not
ANONYMOUS_RATE_LIMIT = 2.0
ANONYMOUS_BURST = 20
TOKEN_PRINCIPAL = "api-token"  # the one principal: FRAUD_API_TOKEN's holder
DOCS_ASSETS = "/docs-assets"  # Swagger UI's scripts and styles, from the installed swagger-ui-bundle (no CDN)
SCORE_DESCRIPTION = """
Scores the transaction with the promoted model and **records the decision** (the decision log,
`fraud decisions`) before answering: the answer you get is always the one recorded.

- **Idempotent by `trans_num`**: a retry of the same transaction gets the recorded answer and records nothing
  more; the same `trans_num` with a different transaction gets 409 `trans_num_conflict`.
- **Velocity sees the present**: the card's and merchant's features count the transactions decided here
  before this one, as well as the settled ones the batch path has loaded (never both for one `trans_num`).
- **New cards and merchants are scored** (`new_card`, `new_merchant` in the answer): the holder's fields are
  taken from the request until the batch path stores the card's record; left out, they count as unknown.
- Refused with their own reason (422, `detail[].type`): a card number that is not one (`invalid_card_number`)
  or whose check digit is wrong (`invalid_card_checksum`), an amount below 0 or above 1,000,000, an
  unreadable time (`invalid_timestamp`, naming the field sent), a time outside 1970..2100
  (`event_time_out_of_range`), a date of birth before 1900 or after the transaction (`invalid_dob`).
- 503 `database_unavailable`: nothing was recorded; retry with the same body.
"""
HOLDER_POLICY = (
    "For a known card the holder's fields (dob, city_pop, lat, long) are its stored record's: values sent in the "
    "request fill in only what the record lacks and never override it."
)


# --- the request and the answer ---------------------------------------------------------------------------------


class Reason(BaseModel):
    feature: str
    contribution: float = Field(description="score minus the score with this feature set to its baseline (median)")


class Score(BaseModel):
    trans_num: str
    score: float = Field(description="fraud probability from the promoted model, 0..1")
    flagged: bool = Field(description="score >= threshold")
    threshold: float
    model_version: str
    feature_version: str
    reasons: list[Reason] = Field(description="up to 3 features that pushed the score up most (per-feature occlusion)")
    new_card: bool = Field(
        description="the first time the platform sees this card: no stored record, no earlier decision"
    )
    new_merchant: bool = Field(description="the first time the platform sees this merchant")


class Problem(BaseModel):
    detail: list[dict] | str


# --- guards ---------------------------------------------------------------------------------------------------


def api_token(settings: Settings) -> tuple[str, Path | None]:
    """(token, the file it came from). From FRAUD_API_TOKEN; locally, when unset, generated once (mode 0600)."""
    if settings.api_token is not None:
        return settings.api_token.get_secret_value(), None
    if settings.mode == "aws":
        raise RuntimeError("FRAUD_API_TOKEN must be set in aws mode")
    path = settings.home / "secrets" / "api_token"
    return private_secret(path, lambda: secrets.token_urlsafe(32)), path


class RateLimiter:
    """A token bucket per key (a principal, a client address): `rate` requests per second sustained, `burst` at
    once; rate 0 is off."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)

    def retry_after(self, client: str) -> float:
        """0 when the request may go ahead (and take a token), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > 100_000:  # forget idle clients rather than grow without bound
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return 0.0


def _problem(
    status: int, type_: str, message: str, field: str | None = None, headers: dict | None = None
) -> HTTPException:
    loc = ["body", field] if field else []
    return HTTPException(status, detail=[{"loc": loc, "msg": message, "type": type_}], headers=headers)


# --- the app --------------------------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    rate_limit: float = DEFAULT_RATE_LIMIT,
    burst: int = DEFAULT_BURST,
    scorer: RealtimeScorer | None = None,
    anonymous_rate_limit: float = ANONYMOUS_RATE_LIMIT,
    anonymous_burst: int = ANONYMOUS_BURST,
) -> FastAPI:
    settings = settings or Settings()
    token, _ = api_token(settings)
    proxies = trusted_networks(settings.trusted_proxies)
    scorer = scorer or RealtimeScorer(settings)
    limiter = RateLimiter(rate_limit, burst)  # per principal
    anonymous = RateLimiter(anonymous_rate_limit, anonymous_burst)  # per client address
    bearer = HTTPBearer(auto_error=False, description="FRAUD_API_TOKEN (locally: FRAUD_HOME/secrets/api_token)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with scorer.serving():
            yield

    app = FastAPI(
        title="fraud-platform real-time scoring",
        version="1",
        lifespan=lifespan,
        description=__doc__.split("\n\n")[0].replace("\n", " ") + "\n\n" + HOLDER_POLICY,
        docs_url=None,  # served below from local assets
        redoc_url=None,  # ReDoc's script comes only from a CDN: not offered
    )
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    def principal(credentials: HTTPAuthorizationCredentials | None) -> str | None:
        """Who a valid bearer token names, else None."""
        if credentials is None or credentials.scheme.lower() != "bearer":
            return None
        return TOKEN_PRINCIPAL if hmac.compare_digest(credentials.credentials.encode(), token.encode()) else None

    def count(request: Request, who: str | None) -> None:
        """Take one request from its bucket: the principal's, else (unauthenticated) the client address's."""
        bucket, key = (limiter, who) if who else (anonymous, client_address(request, proxies))
        wait = bucket.retry_after(key)
        if wait:
            raise _problem(
                429,
                "rate_limited",
                f"over {bucket.rate:g} requests per second; retry later",
                headers={"Retry-After": str(math.ceil(wait))},
            )

    async def authorized(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        who = principal(credentials)
        count(request, who)  # a refused token counts against the address: 429 stops a guessing loop before 401
        if who is not None:
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _problem(
                401, "missing_token", "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        raise _problem(
            401,
            "invalid_token",
            "the token is not valid",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # one error shape everywhere: FastAPI's own errors (a body that is not UTF-8, 404, 405) carry a string
        detail = (
            error.detail
            if isinstance(error.detail, list)
            else [
                {
                    "loc": ["body"] if error.status_code == 400 else [],
                    "msg": str(error.detail),
                    "type": "invalid_body" if error.status_code == 400 else f"http_{error.status_code}",
                }
            ]
        )
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # the submitted values ("input") are left out: they may hold a card number
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
            for e in error.errors()
        ]
        status = 400 if any(d["type"] == "json_invalid" for d in detail) else 422
        return JSONResponse({"detail": detail}, status_code=status)

    @app.post(
        "/v1/score",
        response_model=Score,
        dependencies=[Depends(authorized)],
        responses={
            400: {"model": Problem},
            401: {"model": Problem},
            409: {"model": Problem},
            413: {"model": Problem},
            422: {"model": Problem},
            429: {"model": Problem},
            503: {"model": Problem},
        },
        summary="Score one transaction at the till, and record the decision",
        description=SCORE_DESCRIPTION,
    )
    async def score(transaction: RawTransaction) -> JSONResponse:
        # on the event loop: a request is two asyncio statements and 0.2 ms of LiteRT, cheaper than a thread hop
        try:
            # the answer as built, not validated again into `Score` (the model documents it)
            return JSONResponse(await scorer.score_async(transaction.model_dump(exclude_none=True), channel="api"))
        except InvalidTransaction as problem:
            raise _problem(422, problem.code, problem.message, problem.field) from None
        except DecisionConflict as problem:
            raise _problem(409, "trans_num_conflict", str(problem), "trans_num") from None
        except NoPromotedModel as problem:
            raise _problem(503, "no_model", str(problem)) from None
        except psycopg.OperationalError:  # a pool timeout too
            raise _problem(
                503, "database_unavailable", "the database did not answer; nothing was recorded, retry later"
            ) from None

    @app.get(
        "/health",
        summary="Database reachable and a model promoted",
        description="Up or down to anyone; the model version (or the failure's kind) only with the bearer token.",
        responses={429: {"model": Problem}, 503: {"description": "unavailable"}},
    )
    async def health(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> JSONResponse:
        who = principal(credentials)
        count(request, who)
        try:
            version = await scorer.check_async()
        except Exception as problem:  # health reports any failure as unavailable, with its kind only
            reason = {"reason": type(problem).__name__} if who else {}
            return JSONResponse({"status": "unavailable", **reason}, status_code=503)
        return JSONResponse({"status": "ok", **({"model_version": version} if who else {})})

    return BodySizeLimit(app, MAX_BODY_BYTES)


class BodySizeLimit:
    """ASGI wrapper: a request body over `max_bytes` gets 413, by its Content-Length or, when streamed,
    as soon as the bytes received pass the limit (the app never sees the rest)."""

    def __init__(self, app: FastAPI, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def __getattr__(self, name: str):  # .openapi(), .routes, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._too_large(send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # FastAPI re-raises HTTPException from the body read as it is
                    raise _problem(413, "body_too_large", f"the body must be at most {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, send) -> None:
        response = JSONResponse(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"the body must be at most {self.max_bytes} bytes",
                        "type": "body_too_large",
                    }
                ]
            },
            status_code=413,
            headers={"Connection": "close"},
        )
        await response({"type": "http"}, None, send)


def serve(settings: Settings, port: int, rate_limit: float = DEFAULT_RATE_LIMIT, say=print) -> None:
    """Run the API with uvicorn on 127.0.0.1 (loopback only: put a TLS proxy in front to expose it). Says
    where the token is, never the token."""
    import uvicorn

    scorer = RealtimeScorer(settings)
    application = create_app(settings, rate_limit=rate_limit, scorer=scorer)
    _, path = api_token(settings)
    say(f"bearer token: {'from FRAUD_API_TOKEN' if path is None else f'in {path}'}")
    try:
        say(f"model: {scorer.warm_up()}")  # load the model and its attribution baseline before the first request
    except NoPromotedModel as problem:
        say(f"no model yet ({problem}): /v1/score answers 503 until one is promoted")
    say(f"listening on http://127.0.0.1:{port} (OpenAPI: /docs)")
    # keep-alive longer than a load balancer's idle timeout (60 s on ALB), so the server never closes a connection
    # the client is about to reuse
    # proxy_headers off: the client address is the socket peer, or what fraud/serving/clients.py allows
    uvicorn.run(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=75,
        proxy_headers=False,
    )
