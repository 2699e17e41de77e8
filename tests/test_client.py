"""The typed client: requests, decoding, errors, retries and SSE against MockTransport; then a real server."""

import asyncio
import json
import re
import time

import httpx
import msgspec
import pytest
from click.testing import CliRunner
from mock_transport import recording_transport
from test_server_process import Server

from recursum.clients import client as client_module
from recursum.clients.cli import client as client_cli
from recursum.clients.client import AsyncClient, Client
from recursum.clients.exceptions import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    JobFailed,
    NotFound,
    NotReady,
    QueueFull,
    ServerError,
    TransportError,
    Unauthorized,
    WaitTimeout,
)
from recursum.schemas.events import HeightDone, HeightStarted, JobFinished, JobState, NodeSummary
from recursum.schemas.jobs import JobRead
from recursum.schemas.options import SummaryOptions
from recursum.schemas.problems import Problem

URL = "http://recursum.test"
JOB_ID = "job-1"


def _job(status: str = "running", **fields) -> JobRead:
    return JobRead(id=JOB_ID, title="Alice", status=status, created=1.0, started=2.0, finished=None,
                   progress=[], **fields)


def _json(value, status: int = 200, **headers) -> httpx.Response:
    return httpx.Response(status, content=msgspec.json.encode(value), headers=headers)


def _problem(status: int, **headers) -> httpx.Response:
    problem = Problem(type="https://recursum.dev/problems/x", title="Something", status=status, detail="why")
    headers["content-type"] = "application/problem+json"
    return _json(problem, status, **headers)


def _sse(*events) -> bytes:
    return b"".join(f"event: {type(e).__struct_config__.tag}\ndata: ".encode() + msgspec.json.encode(e)
                    + b"\n\n" for e in events)


PROGRESS = (JobState(job=_job()), HeightStarted(height=0, nodes=2, cached=0),
            NodeSummary(node_id="a", height=0, index=0, summary="A."),
            NodeSummary(node_id="b", height=0, index=1, summary="B."), HeightDone(height=0, nodes=2),
            HeightStarted(height=1, nodes=1, cached=0),
            NodeSummary(node_id="r", height=1, index=0, summary="R."),
            HeightDone(height=1, nodes=1))
DONE = _job("done", root="r", summary="R.")


def _client(answer, **options) -> tuple[Client, list[httpx.Request]]:
    transport, requests = recording_transport(answer)
    return Client(URL, "sekrit", transport=transport, **options), requests


def _async_client(answer, **options) -> tuple[AsyncClient, list[httpx.Request]]:
    transport, requests = recording_transport(answer)
    return AsyncClient(URL, "sekrit", transport=transport, **options), requests


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """Records the client's back-off sleeps instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(client_module.time, "sleep", recorded.append)
    return recorded


# Requests and decoding


def test_submit_posts_the_document_as_json_with_the_bearer_key():
    accepted = {"id": JOB_ID, "url": f"/v1/summaries/{JOB_ID}", "status": "queued"}
    client, requests = _client(lambda request, n: _json(accepted, 202))
    result = client.submit("Once upon a time.", title="Tale", options=SummaryOptions(chunk_tokens=64),
                           callback_url="https://hooks.test/done")
    assert (result.id, result.status, result.notes) == (JOB_ID, "queued", [])
    (request,) = requests
    assert (request.method, request.url.path) == ("POST", "/v1/summaries")
    assert request.headers["authorization"] == "Bearer sekrit"
    body = json.loads(request.content)
    assert body["text"] == "Once upon a time." and body["title"] == "Tale"
    assert body["options"]["chunk_tokens"] == 64 and body["callback_url"] == "https://hooks.test/done"


def test_submit_file_uploads_the_file_field_with_options_as_a_json_form_field(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("Chapter one.")
    accepted = {"id": JOB_ID, "url": f"/v1/summaries/{JOB_ID}", "status": "queued"}
    client, requests = _client(lambda request, n: _json(accepted, 202))
    client.submit_file(book, options=SummaryOptions(summary_tokens=16))
    (request,) = requests
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content.decode()
    assert 'name="file"; filename="book.txt"' in body and "Chapter one." in body
    assert 'name="options"' in body and '"summary_tokens":16' in body
    assert 'name="title"' not in body  # the server then titles it by its file name


ESTIMATE = {"chunks": 3, "nodes": [3, 1], "prompt_tokens": 2400, "generated_tokens": 800, "seconds": 42.5,
            "basis": "measured"}


def test_estimate_posts_the_submission_body_to_the_estimates_route(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("Chapter one.")
    client, requests = _client(lambda request, n: _json(ESTIMATE))
    by_text = client.estimate("Once upon a time.", options=SummaryOptions(chunk_tokens=64))
    by_file = client.estimate_file(book)
    assert by_text == by_file and (by_text.chunks, by_text.nodes, by_text.seconds) == (3, [3, 1], 42.5)
    assert [(r.method, r.url.path) for r in requests] == [("POST", "/v1/estimates")] * 2
    assert json.loads(requests[0].content)["options"]["chunk_tokens"] == 64
    assert requests[1].headers["content-type"].startswith("multipart/form-data")


ADAPTERS = {"served": {"id": 2, "directory": "/bundles/two", "version": "v2", "activated": 5.0,
                       "activated_by": "root"},
            "previous": {"id": 1, "directory": "/bundles/one", "version": "v1", "activated": 4.0,
                         "activated_by": "configuration"},
            "replica": "a", "serving_here": "v2", "directory_here": "/bundles/two",
            "loaded_here": ["none", "v2"]}


def test_adapter_calls_read_activate_and_roll_back_with_a_long_timeout():
    client, requests = _client(lambda request, n: _json(ADAPTERS))
    assert client.adapters().served.version == "v2"
    assert client.activate_adapters("/bundles/two").previous.activated_by == "configuration"
    client.activate_adapters(None)
    client.rollback_adapters()
    assert [(r.method, r.url.path) for r in requests] == [
        ("GET", "/v1/admin/adapters"), ("POST", "/v1/admin/adapters"), ("POST", "/v1/admin/adapters"),
        ("POST", "/v1/admin/adapters/rollback")]
    assert [json.loads(r.content) for r in requests[1:3]] == [{"directory": "/bundles/two"},
                                                             {"directory": "none"}]
    assert requests[1].extensions["timeout"]["read"] > 900, "a switch waits for the server's batch"


def test_the_cli_prints_and_switches_the_served_bundle(monkeypatch):
    transport, requests = recording_transport(lambda request, n: _json(ADAPTERS))
    monkeypatch.setattr(client_module.httpx, "Client", _with_transport(transport))
    runner = CliRunner()
    shown = runner.invoke(client_cli, ["adapters", "--server", URL])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["served"]["version"] == "v2"
    assert runner.invoke(client_cli, ["adapters", "--server", URL, "--rollback"]).exit_code == 0
    both = runner.invoke(client_cli, ["adapters", "--server", URL, "--rollback", "--activate", "/b"])
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    assert [r.url.path for r in requests] == ["/v1/admin/adapters", "/v1/admin/adapters/rollback"]


def _with_transport(transport):
    real = httpx.Client
    return lambda **options: real(**(options | {"transport": transport}))


def test_get_tree_and_node_decode_into_the_wire_structs():
    tree = {"job_id": JOB_ID, "document_id": "d", "model": None, "heights": [["r"]], "nodes": [], "root": "r"}
    node = {"node": {"id": "r", "key": "k", "height": 0, "index": 0, "role": "chunk", "adapter": None,
                     "span": [0, 5], "children": [], "summary": "S.", "sentences": []}, "source": "Alice"}

    def answer(request, n):
        if request.url.path.endswith("/tree"):
            return _json(tree)
        if "/nodes/" in request.url.path:
            return _json(node)
        return _json(DONE)

    client, requests = _client(answer)
    assert client.get(JOB_ID) == DONE
    assert client.tree(JOB_ID).heights == [["r"]]
    read = client.node(JOB_ID, "r", include_source=True)
    assert (read.node.span.start, read.node.span.end, read.source) == (0, 5, "Alice")
    assert requests[-1].url.params["include"] == "source"
    client.node(JOB_ID, "r")
    assert "include" not in requests[-1].url.params


def test_cancel_sends_delete_and_returns_the_outcome():
    client, requests = _client(lambda request, n: _json({"id": JOB_ID, "outcome": "cancelling"}))
    assert client.cancel(JOB_ID) == "cancelling"
    assert (requests[0].method, requests[0].url.path) == ("DELETE", f"/v1/summaries/{JOB_ID}")


# Errors


@pytest.mark.parametrize(("status", "error"), [
    (400, BadRequest), (413, BadRequest), (415, BadRequest), (422, BadRequest), (401, Unauthorized),
    (403, Forbidden), (404, NotFound), (409, Conflict), (418, ApiError), (500, ServerError),
    (502, ServerError),
])
def test_a_problem_answer_raises_the_error_for_its_status_carrying_the_problem(status, error):
    client, _ = _client(lambda request, n: _problem(status))
    with pytest.raises(error) as raised:
        client.get(JOB_ID)
    assert type(raised.value) is error
    assert raised.value.status == status and raised.value.problem.detail == "why"


def test_an_error_body_that_is_no_problem_still_raises_with_a_synthesized_problem():
    client, _ = _client(lambda request, n: httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(ServerError) as raised:
        client.get(JOB_ID)
    assert raised.value.problem.status == 502 and "Bad gateway" in raised.value.problem.detail


def test_a_transport_error_is_mapped_with_its_cause():
    def refuse(request, n):
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = _client(refuse)
    with pytest.raises(TransportError) as raised:
        client.get(JOB_ID)
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


# Retries


def test_queue_full_is_retried_after_the_retry_after_seconds(sleeps):
    accepted = {"id": JOB_ID, "url": "/v1/summaries/job-1", "status": "queued"}
    client, requests = _client(lambda request, n: _problem(429, **{"retry-after": "2"}) if n < 3
                               else _json(accepted, 202))
    assert client.submit("text").id == JOB_ID
    assert len(requests) == 3 and sleeps == [2.0, 2.0]


def test_not_ready_without_retry_after_backs_off_exponentially(sleeps):
    client, requests = _client(lambda request, n: _problem(503) if n < 3 else _json(DONE), backoff=0.5)
    assert client.get(JOB_ID) == DONE
    assert sleeps == [0.5, 1.0]


@pytest.mark.parametrize(("status", "error"), [(429, QueueFull), (503, NotReady)])
def test_retries_stop_after_max_retries_and_raise_with_retry_after(sleeps, status, error):
    client, requests = _client(lambda request, n: _problem(status, **{"retry-after": "1"}), max_retries=2)
    with pytest.raises(error) as raised:
        client.submit("text")
    assert len(requests) == 3 and len(sleeps) == 2
    assert raised.value.retry_after == 1.0


def test_other_errors_are_not_retried(sleeps):
    client, requests = _client(lambda request, n: _problem(500))
    with pytest.raises(ServerError):
        client.get(JOB_ID)
    assert len(requests) == 1 and sleeps == []


# Probes


def test_health_and_ready_answer_booleans_without_retrying(sleeps):
    client, requests = _client(lambda request, n: _json({"status": "ok"}) if request.url.path == "/healthz"
                               else _problem(503))
    assert client.health() is True
    assert client.ready() is False
    assert len(requests) == 2 and sleeps == []


def test_an_unreachable_server_is_neither_healthy_nor_ready():
    def refuse(request, n):
        raise httpx.ConnectError("connection refused", request=request)

    client, _ = _client(refuse)
    assert client.health() is False and client.ready() is False


# Event stream


def _stream(*bodies: bytes):
    """Answers the n-th connection to the event stream with bodies[n]."""
    return lambda request, n: httpx.Response(200, content=bodies[n - 1],
                                             headers={"content-type": "text/event-stream"})


def test_wait_decodes_every_event_and_returns_the_finished_job():
    client, requests = _client(_stream(_sse(*PROGRESS, JobFinished(job=DONE))))
    seen = []
    assert client.wait(JOB_ID, on_event=seen.append) == DONE
    assert seen == [*PROGRESS, JobFinished(job=DONE)]
    assert requests[0].url.path == f"/v1/summaries/{JOB_ID}/events"
    assert requests[0].headers["accept"] == "text/event-stream"


def test_wait_ignores_comments_and_joins_multi_line_data():
    body = b": ping\n\nevent: finished\ndata: " + msgspec.json.encode(JobFinished(job=DONE)).replace(
        b'"job":', b'\ndata: "job":') + b"\n\n"
    client, _ = _client(_stream(body))
    assert client.wait(JOB_ID) == DONE


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_wait_raises_job_failed_with_the_final_job(status):
    final = _job(status, error="out of memory")
    client, _ = _client(_stream(_sse(JobState(job=_job()), JobFinished(job=final))))
    with pytest.raises(JobFailed) as raised:
        client.wait(JOB_ID)
    assert raised.value.job == final


def test_wait_reconnects_for_as_long_as_each_stream_delivers_events():
    # The server ends a stream past its lifetime, or when its reader fell behind: each new one starts
    # with the job's state, so the client follows however many there are.
    client, requests = _client(_stream(_sse(*PROGRESS[:3]), _sse(*PROGRESS[:1]), _sse(*PROGRESS[:1]),
                                       _sse(JobFinished(job=DONE))))
    assert client.wait(JOB_ID) == DONE
    assert len(requests) == 4


def test_wait_gives_up_when_streams_end_twice_without_an_event():
    client, requests = _client(_stream(_sse(*PROGRESS[:3]), b"", b""))
    with pytest.raises(TransportError, match="without an event"):
        client.wait(JOB_ID)
    assert len(requests) == 3


def test_wait_raises_wait_timeout_once_the_timeout_has_passed():
    def slow_events():
        yield _sse(JobState(job=_job()))
        time.sleep(0.2)
        yield _sse(HeightStarted(height=0, nodes=2, cached=0))
        yield _sse(JobFinished(job=DONE))

    client, _ = _client(lambda request, n: httpx.Response(200, content=slow_events()))
    with pytest.raises(WaitTimeout):
        client.wait(JOB_ID, timeout=0.1)


def test_wait_on_an_unknown_job_raises_not_found():
    client, _ = _client(lambda request, n: _problem(404))
    with pytest.raises(NotFound):
        client.wait(JOB_ID)


# The async twin


def test_the_async_client_submits_waits_and_maps_errors():
    async def scenario():
        def answer(request, n):
            if request.method == "POST":
                return _json({"id": JOB_ID, "url": "/v1/summaries/job-1", "status": "queued"}, 202)
            if request.url.path.endswith("/events"):
                return _stream(_sse(*PROGRESS[:2]), _sse(JobFinished(job=DONE)))(request, n - 1)
            return _problem(404)

        seen = []
        async with _async_client(answer)[0] as client:
            accepted = await client.submit("text")
            assert await client.wait(accepted.id, on_event=seen.append) == DONE
            with pytest.raises(NotFound):
                await client.get("nope")
        assert seen == [*PROGRESS[:2], JobFinished(job=DONE)]

    asyncio.run(scenario())


def test_the_async_client_retries_and_reports_transport_errors():
    async def scenario():
        client, requests = _async_client(lambda request, n: _problem(503, **{"retry-after": "0"}) if n < 3
                                         else _json(DONE))
        assert await client.get(JOB_ID) == DONE
        assert len(requests) == 3

        def refuse(request, n):
            raise httpx.ConnectError("connection refused", request=request)

        down, _ = _async_client(refuse)
        assert await down.ready() is False
        with pytest.raises(TransportError):
            await down.cancel(JOB_ID)

    asyncio.run(scenario())


# CLI errors


def test_the_cli_turns_a_client_error_into_one_line_and_exit_code_1():
    result = CliRunner().invoke(client_cli, ["get", JOB_ID, "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.stderr.startswith("recursum: error: GET http://127.0.0.1:9/v1/summaries/job-1")
    assert len(result.stderr.strip().splitlines()) == 1


# A real `recursum serve --dev`

STORY = "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall and found a golden key."
                    for i in range(12))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("client-server")
    running = Server(home / "home", tiny_model_dir, f"sqlite:///{home / 'service.db'}")
    yield running
    running.stop()


@pytest.mark.integration
def test_a_real_server_summarizes_with_height_events_and_serves_the_tree(server):
    events = []
    with Client(server.url) as client:
        assert client.health() and client.ready()
        options = SummaryOptions(chunk_tokens=40, summary_tokens=8)
        accepted = client.submit(STORY, title="Alice", options=options)
        job = client.wait(accepted.id, on_event=events.append, timeout=120)
        tree = client.tree(job.id)
        leaf = client.node(job.id, tree.heights[0][0], include_source=True)
    assert job.status == "done" and job.root == tree.root == tree.heights[-1][0]
    started = [e.height for e in events if isinstance(e, HeightStarted)]
    finished = [e.height for e in events if isinstance(e, HeightDone)]
    assert finished == list(range(len(tree.heights)))
    # On a busy machine the stream can join once height 0 has started: its state event says so.
    assert started == finished[len(finished) - len(started):] and isinstance(events[0], JobState)
    assert isinstance(events[-1], JobFinished)
    assert leaf.source == STORY[leaf.node.span.start:leaf.node.span.end]


@pytest.mark.integration
def test_the_cli_summarizes_a_book_on_a_real_server(server, tmp_path):
    book, out = tmp_path / "book.txt", tmp_path / "tree.json"
    book.write_text(STORY)
    result = CliRunner().invoke(client_cli, ["summarize", str(book), "--server", server.url,
                                             "--chunk-tokens", "40", "--summary-tokens", "8",
                                             "--out", str(out)])
    assert result.exit_code == 0, result.output
    tree = json.loads(out.read_text())
    root = next(node for node in tree["nodes"] if node["id"] == tree["root"])
    assert result.stdout == root["summary"] + "\n"
    # The bar starts at whatever height the job is in when the stream connects (cached nodes are fast).
    assert re.search(r"height \d", result.stderr)


@pytest.mark.integration
def test_the_cli_estimates_a_book_on_a_real_server_without_queueing_it(server, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(STORY)
    result = CliRunner().invoke(client_cli, ["estimate", str(book), "--server", server.url,
                                             "--chunk-tokens", "40", "--summary-tokens", "8"])
    assert result.exit_code == 0, result.output
    estimate = json.loads(result.stdout)
    assert estimate["chunks"] >= 2 and estimate["nodes"][0] == estimate["chunks"]
    assert estimate["prompt_tokens"] > 0 and estimate["basis"] in ("probe", "measured")

