"""A Host header allowlist, so a web page cannot reach a local server through DNS rebinding (its requests
carry the attacker's name in Host).

Litestar's `AllowedHostsConfig` matches the Host header with its port, so an entry `localhost` refuses
`localhost:8000`, and answers with a non-problem body; this compares the name alone.
"""

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from recursum.service.api.problems import ApiError


class HostNotAllowed(ApiError):
    status, title = 400, "Host not allowed"


def host_name(header: str) -> str:
    """The name in a Host header, without its port; IPv6 literals lose their brackets."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class AllowedHosts(ASGIMiddleware):
    """Refuses HTTP requests whose Host names no allowed host."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, hosts: frozenset[str]) -> None:
        self.hosts = frozenset(host.lower() for host in hosts)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        header = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        if host_name(header) not in self.hosts:
            raise HostNotAllowed(f"Host {header!r} is not served here; set RECURSUM_ALLOWED_HOSTS")
        await next_app(scope, receive, send)
