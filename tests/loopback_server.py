"""A free loopback port and waiting until a server there is ready, for tests and benchmarks."""

import socket
import subprocess
import time

import httpx


class ServerNotReady(Exception):
    """Raised when a server's `/readyz` did not answer 200 in time, or its process exited first."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url`/readyz until it answers 200; give up after `timeout` seconds, or as soon as `process`
    (the server, when it runs as one) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerNotReady(f"the server for {url} exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServerNotReady(f"{url}/readyz did not answer 200 within {timeout:.0f} s")
