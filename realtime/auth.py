"""Who is on the other end of a WebSocket.

Three credentials, first match wins:

1. a bearer subprotocol: the client offers ``["bearer", "<api key>"]`` (answered with
   ``"bearer"``) or ``["bearer.<api key>"]`` (answered with that same value, as browsers
   require the answer to be one of the offered protocols);
2. ``?token=<api key>`` in the query string (redacted from server logs by
   ``realtime.logging.RedactTokensFilter``);
3. the Django session cookie, accepted only when the ``Origin`` header matches
   ``ALLOWED_HOSTS`` or ``CSRF_TRUSTED_ORIGINS`` (``channels.security.websocket.OriginValidator``
   semantics), so another site cannot ride a logged-in browser's cookie.

A presented but invalid key is a failure: it never falls back to the session. Keys are
never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user as django_get_user
from django.http.cookie import parse_cookie

from flowplatform.authentication import principal_for_key, principal_for_session_user
from flowplatform.principal import Principal
from flowplatform.services import find_active_api_key

BEARER = "bearer"
BEARER_PREFIX = "bearer."


@dataclass(frozen=True)
class Credentials:
    """What the handshake carried. ``subprotocol`` is the answer to send with accept."""

    api_key: str | None = None
    session_key: str | None = None
    origin: str | None = None
    subprotocol: str | None = None
    malformed: bool = False

    @property
    def present(self) -> bool:
        return self.api_key is not None or self.session_key is not None or self.malformed


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            try:
                return value.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                return None
    return None


def _from_subprotocols(offered: list[str]) -> tuple[str | None, str | None, bool]:
    """(api key, answer, malformed) from the offered subprotocols."""
    for index, value in enumerate(offered):
        if value == BEARER:
            key = offered[index + 1] if index + 1 < len(offered) else ""
            if not key or key == BEARER or key.startswith(BEARER_PREFIX):
                return None, BEARER, True
            return key, BEARER, False
        if value.startswith(BEARER_PREFIX):
            key = value[len(BEARER_PREFIX) :]
            return (key or None), value, not key
    return None, None, False


def credentials_from_scope(scope: dict[str, Any]) -> Credentials:
    offered = [str(p) for p in scope.get("subprotocols") or ()]
    key, answer, malformed = _from_subprotocols(offered)
    if key is None and not malformed:
        query = parse_qs(
            (scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True
        )
        tokens = query.get("token")
        if tokens:
            key = tokens[0] or None
            malformed = not tokens[0]
    session_key = None
    if key is None and not malformed:
        cookie = _header(scope, b"cookie")
        if cookie:
            session_key = parse_cookie(cookie).get(settings.SESSION_COOKIE_NAME) or None
    return Credentials(
        api_key=key,
        session_key=session_key,
        origin=_header(scope, b"origin"),
        subprotocol=answer,
        malformed=malformed,
    )


def allowed_origin_patterns() -> list[str]:
    """ALLOWED_HOSTS (host patterns) and CSRF_TRUSTED_ORIGINS (scheme://host[:port])."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    origins = [
        origin.replace("://*.", "://.") for origin in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])
    ]
    return hosts + origins


def origin_allowed(origin: str | None) -> bool:
    """``OriginValidator`` semantics: a missing Origin is refused unless ``*`` is allowed."""
    parsed = urlparse(origin) if origin else None
    return OriginValidator(None, allowed_origin_patterns()).valid_origin(parsed)


class _SessionRequest:
    """The one attribute ``django.contrib.auth.get_user`` reads from a request."""

    def __init__(self, session: Any) -> None:
        self.session = session


def principal_for_session(session_key: str) -> Principal | None:
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    user = django_get_user(_SessionRequest(session))
    if not user.is_authenticated or not user.is_active:
        return None
    return principal_for_session_user(user)


def authenticate(credentials: Credentials) -> Principal | None:
    """The principal for ``credentials``, or None. Sync: call via database_sync_to_async."""
    if credentials.malformed:
        return None
    if credentials.api_key is not None:
        key = find_active_api_key(raw_key=credentials.api_key)
        return principal_for_key(key) if key is not None else None
    if credentials.session_key is not None:
        if not origin_allowed(credentials.origin):
            return None
        return principal_for_session(credentials.session_key)
    return None
