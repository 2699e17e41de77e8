"""API keys with scopes. Handlers declare `opt={"scope": ...}` (one scope, or a tuple of which any will do)
or `opt=PUBLIC`; one guard checks every route, and refuses one that declares neither, so a new route is
never public by omission."""

import hmac
from collections.abc import Callable
from typing import TypeVar

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from recursum.service.api.problems import Forbidden, NotFound, Unauthorized
from recursum.service.settings import SCOPES, ServiceSettings, hash_secret


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the key's name owns the jobs it submits."""

    name: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


DEV_PRINCIPAL = Principal(name="dev", scopes=SCOPES)
PUBLIC = {"public": True}  # a route anyone may call: health, readiness, metrics, the evaluate page
Owned = TypeVar("Owned")


def visible_or_404(found: Owned | None, owner: Callable[[Owned], str], principal: Principal, missing: str,
                   also_scope: str | None = None) -> Owned:
    """`found` if the caller may see it (its owner, an admin, or a key with `also_scope`); anything else is
    404 like a missing one, never 403, so the ids of others' jobs and comparisons do not leak."""
    if found is None or not (owner(found) == principal.name or principal.is_admin
                             or (also_scope is not None and also_scope in principal.scopes)):
        raise NotFound(missing)
    return found


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


def _is_schema(connection: ASGIConnection) -> bool:
    """The OpenAPI schema routes (Litestar's own handlers) are public: they describe the API, no data. So are
    the OPTIONS answers Litestar adds to every path (an Allow header, nothing more)."""
    config = connection.app.openapi_config
    return config is not None and bool(config.path) and connection.scope["path"].startswith(config.path)


def scope_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Authenticates the caller and checks the scope the handler asks for (admin has all)."""
    scope = handler.opt.get("scope")
    if scope is None:
        if handler.opt.get("public") or _is_schema(connection) or connection.scope["method"] == "OPTIONS":
            return
        raise Forbidden(f"route {connection.scope['path']} declares no scope; it is served to nobody")
    principal = authenticate(connection, connection.app.state.settings)
    accepted = (scope,) if isinstance(scope, str) else tuple(scope)
    if principal.scopes.isdisjoint(accepted) and not principal.is_admin:
        raise Forbidden(f"this route needs the `{'` or `'.join(accepted)}` scope")
    connection.state.principal = principal
