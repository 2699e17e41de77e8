"""Callback URLs are checked at submit: only http(s) to an allowlisted host, so a callback cannot be aimed at
arbitrary internal addresses (delivery is `recursum.service.jobs.callbacks`)."""

from urllib.parse import urlsplit

import httpx

from recursum.service.api.problems import ApiError


class CallbackRefused(ApiError):
    status, title = 422, "Callback URL not allowed"


def check_callback_url(url: str, allowed_hosts: frozenset[str]) -> None:
    """Refuse at submit time anything but http(s) to an allowlisted host (or host:port)."""
    try:
        httpx.URL(url)  # the parser delivery will use; refuses what urlsplit silently repairs
        parts = urlsplit(url)
        port = parts.port
    except (httpx.InvalidURL, ValueError):
        raise CallbackRefused(f"callback_url {url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"callback_url must be an http(s) URL, got {url!r}")
    host_port = f"{parts.hostname}:{port}" if port else parts.hostname
    if parts.hostname not in allowed_hosts and host_port not in allowed_hosts:
        raise CallbackRefused(
            f"callback host {parts.hostname!r} is not in RECURSUM_CALLBACK_HOSTS; "
            "ask an operator to allow it")
