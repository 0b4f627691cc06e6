"""PostgreSQL URLs: checking them, describing them without the password, and keeping
the password out of error messages."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from paywire.ledger import postgres
from paywire.ledger.errors import InvalidRequest


def _describe(url: str) -> str:
    """The URL without its password (in the user info or the query), for messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    user_info, at, hosts = netloc.rpartition("@")
    if at:
        user_info = user_info.split(":", 1)[0]
        netloc = f"{user_info}@{hosts}"
    path, question, query = path.partition("?")
    if question:
        kept = [
            pair
            for pair in query.split("&")
            if urllib.parse.unquote(pair.split("=", 1)[0]) != "password"
        ]
        query = "&".join(kept)
        question = "?" if query else ""
    return f"{scheme}{sep}{netloc}{slash}{path}{question}{query}"


class _Scrubber:
    """Removes a password from error messages (libpq rarely echoes it, but never say it)."""

    def __init__(self, password: str | None) -> None:
        secrets: set[str] = set()
        if password:
            secrets.update((password, urllib.parse.quote(password, safe="")))
            secrets.add(urllib.parse.quote_plus(password))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)))
            if secrets
            else None
        )

    def __call__(self, error: BaseException) -> str:
        text = str(error).strip()
        if self._pattern is not None:
            text = self._pattern.sub("***", text)
        return text


def _parse_url(url: object) -> tuple[str, str, str | None]:
    """Check a URL and return (conninfo to connect with, description, password)."""
    if not isinstance(url, str) or not url.startswith(postgres.URL_SCHEMES):
        shown = url.split("://", 1)[0] if isinstance(url, str) else type(url).__name__
        raise InvalidRequest(
            f"a PostgreSQL ledger URL starts with postgresql://, not {shown!r} "
            "(e.g. postgresql://user@host:5432/paywire)"
        )
    description = _describe(url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        password = _password_guess(url)
        raise InvalidRequest(
            f"invalid PostgreSQL URL {description}: {_Scrubber(password)(error)}"
        ) from None
    password = None if params.get("password") is None else str(params["password"])
    for port in str(params.get("port", "")).split(","):
        if port and not port.isdigit():
            raise InvalidRequest(f"invalid PostgreSQL URL {description}: port {port!r}")
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = postgres.CONNECT_TIMEOUT_S
    if "application_name" not in params:
        extra["application_name"] = "paywire-ledger"
    try:
        conninfo = make_conninfo(url, **extra)
    except psycopg.Error as error:
        raise InvalidRequest(
            f"invalid PostgreSQL URL {description}: {_Scrubber(password)(error)}"
        ) from None
    return conninfo, description, password


def _password_guess(url: str) -> str | None:
    """The password in a URL libpq would not parse (only to scrub it from messages)."""
    netloc = url.partition("://")[2].partition("/")[0]
    user_info, at, _ = netloc.rpartition("@")
    if not at or ":" not in user_info:
        return None
    return urllib.parse.unquote(user_info.split(":", 1)[1])
