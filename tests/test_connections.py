"""Connections cannot exhaust the server: SSE streams are capped and bounded, slow request headers are cut
off, dev mode stays on loopback, and a Host allowlist stops DNS rebinding."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn
from fake_engine import FakeEngine
from litestar.testing import TestClient
from service_helpers import held_job

from recursum.schemas.events import JobState
from recursum.schemas.jobs import JobRead
from recursum.service.api.app import create_app
from recursum.service.api.hosts import host_name
from recursum.service.api.server import RequestDeadlineProtocol
from recursum.service.engine.errors import ConfigError
from recursum.service.jobs.broker import QUEUE_EVENTS, EventBroker, StreamLimits, TooManyStreams
from recursum.service.settings import ServiceSettings, check_dev_mode, parse_api_keys
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}
STATE = JobState(job=JobRead(id="job-1", title="", status="running", created=0.0, started=None, finished=None,
                             progress=[]))


def test_streams_are_capped_per_key_and_overall_and_closing_one_frees_its_place():
    async def scenario() -> None:
        broker = EventBroker(StreamLimits(total=3, per_key=2))
        first = broker.subscribe("job-1", "alice")
        broker.subscribe("job-1", "alice")
        with pytest.raises(TooManyStreams, match="this API key"):
            broker.subscribe("job-1", "alice")
        broker.subscribe("job-2", "bob")
        with pytest.raises(TooManyStreams, match="the server"):
            broker.subscribe("job-2", "carol")
        broker.unsubscribe(first)
        broker.subscribe("job-1", "alice")

    asyncio.run(scenario())


def test_a_reader_that_falls_behind_is_dropped_not_buffered_without_bound():
    async def scenario() -> None:
        broker = EventBroker()
        stalled = broker.subscribe("job-1", "alice")
        for _ in range(QUEUE_EVENTS + 10):
            broker.publish("job-1", STATE)
        await asyncio.sleep(0.05)  # the events arrive through the loop
        assert stalled.overflowed
        assert stalled.queue.qsize() == QUEUE_EVENTS

    asyncio.run(scenario())


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'connections.db'}")


def _held_job(store: Store) -> str:
    return held_job(store)


def _client(store, **settings) -> TestClient:
    keys = parse_api_keys("alice:a-secret:summarize")
    app = create_app(ServiceSettings(api_keys=keys, **settings), engine=FakeEngine(), store=store)
    return TestClient(app)


def test_a_key_without_a_free_stream_gets_429(store):
    job_id = _held_job(store)
    with _client(store, streams=StreamLimits(per_key=0)) as client:
        response = client.get(f"/v1/summaries/{job_id}/events", headers=ALICE)
    assert response.status_code == 429
    assert "event streams open" in response.json()["detail"]


def test_a_stream_ends_at_its_lifetime_after_giving_the_state(store):
    job_id = _held_job(store)
    with _client(store, streams=StreamLimits(seconds=0.5)) as client:
        started = time.monotonic()
        response = client.get(f"/v1/summaries/{job_id}/events", headers=ALICE)
    assert time.monotonic() - started < 5
    assert response.text.count("event: state") == 1 and "event: finished" not in response.text


def test_dev_mode_is_refused_beside_api_keys_and_off_loopback():
    with pytest.raises(ConfigError, match="RECURSUM_API_KEYS is set"):
        check_dev_mode(ServiceSettings(dev_mode=True, api_keys=parse_api_keys("a:b:summarize")), "127.0.0.1")
    with pytest.raises(ConfigError, match="loopback only, not 0.0.0.0"):
        check_dev_mode(ServiceSettings(dev_mode=True), "0.0.0.0")
    allowed = check_dev_mode(ServiceSettings(dev_mode=True), "127.0.0.1").allowed_hosts
    assert allowed == {"127.0.0.1", "localhost", "::1"}


@pytest.mark.parametrize(("header", "name"), [("localhost:8000", "localhost"), ("[::1]:8000", "::1"),
                                              ("example.org", "example.org"), ("[::1]", "::1")])
def test_the_host_name_is_read_without_its_port(header, name):
    assert host_name(header) == name


def test_a_request_naming_a_host_off_the_allowlist_is_refused(store):
    settings = ServiceSettings(dev_mode=True, allowed_hosts=frozenset({"localhost"}))
    app = create_app(settings, engine=FakeEngine(), store=store)
    with TestClient(app, base_url="http://localhost:8000") as local:
        assert local.get("/healthz").status_code == 200
    with TestClient(app, base_url="http://rebound.attacker.example:8000") as rebound:
        response = rebound.get("/v1/summaries/anything")
    assert response.status_code == 400
    assert response.json()["title"] == "Host not allowed"


@pytest.fixture
def deadline_server():
    """uvicorn on a loopback port with the request deadlines at half a second; the app answers 204 after
    reading the body."""
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protocol = type("Fast", (RequestDeadlineProtocol,), {"header_seconds": 0.5, "body_seconds": 0.5})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, http=protocol, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(5)


def _trickle(port: int, sent_at_once: bytes, trickled: bytes) -> float | None:
    """Seconds until the server closed a connection that trickles `trickled` a byte per 0.1 s; None if it
    never did."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        started = time.monotonic()
        slow.sendall(sent_at_once)
        for byte in trickled:
            try:
                slow.sendall(bytes([byte]))
                time.sleep(0.1)
            except OSError:
                return time.monotonic() - started
        return time.monotonic() - started if slow.recv(100) == b"" else None


@pytest.mark.integration  # serves uvicorn on a thread
def test_a_client_that_trickles_its_headers_is_cut_off(deadline_server):
    seconds = _trickle(deadline_server, b"", b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40)
    assert seconds is not None and seconds < 3


@pytest.mark.integration  # serves uvicorn on a thread
def test_a_client_that_trickles_its_body_is_cut_off(deadline_server):
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n"
    seconds = _trickle(deadline_server, head, b"b" * 60)
    assert seconds is not None and seconds < 3


@pytest.mark.integration  # serves uvicorn on a thread
def test_prompt_requests_are_served_one_after_another_on_a_kept_alive_connection(deadline_server):
    with socket.create_connection(("127.0.0.1", deadline_server), timeout=5) as prompt:
        for _ in range(2):
            prompt.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            assert prompt.recv(100).startswith(b"HTTP/1.1 204")
            time.sleep(0.3)  # idle between requests, within the header deadline
