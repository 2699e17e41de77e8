"""Where a callback may go: an allowlisted host, on the port its entry names (80 or 443 when it names none),
at an address that is public, or private/loopback where the operator allows it. Link-local addresses (cloud
metadata at 169.254.169.254) are never allowed.

Names are checked at submit; addresses at every delivery, and the POST goes to the address checked, so a
name that resolves or rebinds to an internal address between the check and the POST reaches nothing.
"""

import ipaddress
import socket

import httpx
import msgspec

DEFAULT_PORTS = frozenset({80, 443})


class TargetRefused(ValueError):
    """Raised for a callback URL or address the settings do not allow; the message says which rule."""


class CallbackTargets(msgspec.Struct, frozen=True, kw_only=True):
    """`hosts` entries are `host` (ports 80 and 443) or `host:port`; `allow_private` admits loopback and
    private addresses (tests, single-host deployments)."""

    hosts: frozenset[str] = frozenset()
    allow_private: bool = False

    def check_url(self, url: str) -> httpx.URL:
        """The parsed URL if its scheme, host and port are allowed."""
        try:
            parsed = httpx.URL(url)  # hosts come back lowercased; so are the allowlist's entries
            port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
            if port is not None and not 0 < port < 65536:
                raise ValueError(port)
        except (httpx.InvalidURL, ValueError):
            raise TargetRefused(f"callback_url {url!r} is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise TargetRefused(f"callback_url must be an http(s) URL, got {url!r}")
        if f"{parsed.host}:{port}" in self.hosts or (parsed.host in self.hosts and port in DEFAULT_PORTS):
            return parsed
        if parsed.host in self.hosts:
            raise TargetRefused(f"callback port {port} is not allowed for {parsed.host!r}: an entry without "
                                "a port allows 80 and 443; list host:port in RECURSUM_CALLBACK_HOSTS")
        raise TargetRefused(f"callback host {parsed.host!r} is not in RECURSUM_CALLBACK_HOSTS; "
                            "ask an operator to allow it")

    def address_allowed(self, address: str) -> bool:
        """Whether a callback may connect to `address` (IPv4 or IPv6, a zone index ignored)."""
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.version == 6 and (ip.sixtofour is not None or ip.teredo is not None or ip.is_site_local):
            return False  # tunnels embed an IPv4 address (6to4 of 169.254.169.254 counts as global)
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            return False
        return ip.is_global or (self.allow_private and (ip.is_private or ip.is_loopback))

    def pick_address(self, infos: list[tuple]) -> str:
        """The address to connect to, from `getaddrinfo` results; refused if any of them is not allowed (a
        name with one internal address is not a public receiver)."""
        addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        if not addresses:
            raise TargetRefused("the callback host has no address")
        if refused := [address for address in addresses if not self.address_allowed(address)]:
            raise TargetRefused(f"the callback host resolves to {refused[0]}, which is not a public address")
        return addresses[0]
