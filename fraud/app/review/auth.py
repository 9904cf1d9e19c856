"""Who is asking, and what they may do: the review app's sign-in, sessions, roles, sign-in rate limit, CSRF and
security headers.

- **Users and roles** live in `app_user` (fraud/db/users.py, `fraud users add|list|disable`): `analyst` works the
  queue and gives verdicts, `admin` also sees the users and the recent verdicts. The user is read on every request,
  so disabling someone ends their session at once.
- **Sessions**: Starlette's SessionMiddleware, a cookie signed with `settings.review_signing_key("session")`
  (itsdangerous), HttpOnly, SameSite=Lax, Secure when the app's address (`FRAUD_REVIEW_BASE_URL`) is https, valid
  for SESSION_SECONDS after sign-in. It holds the username and the time of sign-in, nothing else.
- **Sign-in rate limit** (the `limits` library, a moving window in memory): LOGIN_LIMIT attempts per username and
  per client address; the next ones get 429 with Retry-After and a message, whatever the password. The client
  address is the scoring API's rule (fraud/serving/clients.py): the socket peer, X-Forwarded-For only from a proxy
  FRAUD_TRUSTED_PROXIES names.
- **CSRF**: asgi-csrf's signed double-submit token on every POST (a cookie, and the same value in each form's hidden
  `csrftoken` field; the signature is `settings.review_signing_key("csrf")`'s); a POST without it or with another
  value is refused with 403 before the app sees it, so nothing changes. Sign-in and customers' answers are
  protected even without a cookie (asgi-csrf's `always_protect`).
- **Headers** on every answer: a CSP that allows no script at all and styles only from the app, X-Frame-Options
  DENY, nosniff, no referrer (an answer link's signature never leaks through a Referer), and `Cache-Control:
  no-store` on everything but the stylesheet.
- **Identity from a proxy** (off by default; docs/review.md#oidc-in-aws): with `trusted_header` set (`fraud review
  --trust-header x-amzn-oidc-identity`), the user is the one that header names, as an OIDC proxy in front of the app
  (an ALB with authentication, oauth2-proxy) sets it, and there is no password sign-in. The user must still exist and
  be active in `app_user`, which gives the role.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from fraud.db.users import Role, User

SESSION_COOKIE = "fraud_review_session"
CSRF_COOKIE = "fraud_review_csrf"
CSRF_FIELD = "csrftoken"  # asgi-csrf's form field
SESSION_SECONDS = 8 * 3600  # a working day: sign in again after it
LOGIN_LIMIT = "5/minute"

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SignInRequired(Exception):
    """The page needs a signed-in user (answered with a redirect to the sign-in page)."""


class Forbidden(Exception):
    """The user's role does not allow the page."""


@dataclass(frozen=True)
class Refusal:
    retry_after: int  # seconds


class LoginLimiter:
    """`rule` sign-in attempts per username (case-insensitive) and per client address, in a moving window. In
    memory: one process (as `fraud review` runs); several would each count their own."""

    def __init__(self, rule: str = LOGIN_LIMIT):
        self.rule = parse(rule)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def attempt(self, username: str, address: str) -> Refusal | None:
        """Counts one attempt, or refuses it (counting nothing) when either key has used up its window."""
        keys = (("user", username.strip().lower()), ("address", address))
        if all(self.limiter.test(self.rule, *key) for key in keys):
            for key in keys:
                self.limiter.hit(self.rule, *key)
            return None
        resets = [self.limiter.get_window_stats(self.rule, *key).reset_time for key in keys]
        return Refusal(max(1, math.ceil(max(resets) - time.time())))


def signed_in(request: Request, user: User) -> None:
    request.session.clear()
    request.session.update({"user": user.username, "since": int(time.time())})


def signed_out(request: Request) -> None:
    request.session.clear()


def session_username(request: Request) -> str | None:
    name = request.session.get("user")
    return name if isinstance(name, str) else None


def require_role(user: User | None, role: Role = Role.ANALYST) -> User:
    if user is None:
        raise SignInRequired
    if role is Role.ADMIN and user.role is not Role.ADMIN:
        raise Forbidden
    return user


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this app only (never another site: `//host`, `/\\host`, a URL)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(c in target for c in "\r\n"):
        return "/queue"
    return target


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer, no-store on all but the static files."""

    def __init__(self, app, secure: bool = False):
        self.app, self.secure = app, secure

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or static]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if self.secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
