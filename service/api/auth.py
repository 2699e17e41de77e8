"""API keys with scopes. Handlers declare `opt={"scope": ...}` (one scope, or a tuple of which any will do);
one guard checks every route."""

import hmac

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from recursum.service.api.problems import Forbidden, Unauthorized
from recursum.service.settings import SCOPES, ServiceSettings, hash_secret


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's name owns the jobs it submits."""

    name: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


DEV_PRINCIPAL = Principal(name="dev", scopes=SCOPES)


def _presented_secret(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


def authenticate(connection: ASGIConnection, settings: ServiceSettings) -> Principal:
    if settings.dev_mode:
        return DEV_PRINCIPAL
    secret = _presented_secret(connection)
    if not secret:
        raise Unauthorized("send the key as `Authorization: Bearer <key>` or `X-API-Key`")
    digest = hash_secret(secret)
    for key in settings.api_keys:
        if hmac.compare_digest(key.secret_sha256, digest):
            return Principal(name=key.name, scopes=key.scopes)
    raise Unauthorized("this API key is not known")


def scope_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Authenticates the caller and checks the scope the handler asks for (admin has all)."""
    scope = handler.opt.get("scope")
    if scope is None:
        return
    principal = authenticate(connection, connection.app.state.settings)
    accepted = (scope,) if isinstance(scope, str) else tuple(scope)
    if principal.scopes.isdisjoint(accepted) and not principal.is_admin:
        raise Forbidden(f"this route needs the `{'` or `'.join(accepted)}` scope")
    connection.state.principal = principal
