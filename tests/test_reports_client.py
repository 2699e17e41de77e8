"""The typed client's report methods against MockTransport: requests, decoding, polling and errors."""

import asyncio
import json

import httpx
import msgspec
import pytest
from mock_transport import recording_transport

from recursum.clients import client as client_module
from recursum.clients.client import AsyncClient, Client
from recursum.clients.exceptions import BadRequest, Conflict, WaitTimeout
from recursum.schemas.problems import Problem
from recursum.schemas.reports import (
    CritiqueItem,
    CritiqueReport,
    CritiqueRequest,
    EvidenceReport,
    EvidenceRequest,
    QaRequest,
    ReportRead,
)

URL = "http://recursum.test"
REPORTS = "/v1/summaries/job-1/nodes/n-1/reports"
PENDING = ReportRead(id="r-1", job_id="job-1", node_id="n-1", kind="critique", status="pending",
                     request=CritiqueRequest(), created=1.0)
DONE = msgspec.structs.replace(PENDING, status="done", finished=2.0, body=CritiqueReport(items=(
    CritiqueItem(kind="entity", origin="evidence", quote="Hyde met Poole.", sentence=0, severity=0.8,
                 explanation="Poole not named in its supporting sentences"),)))


def _json(value, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=msgspec.json.encode(value))


def test_request_report_posts_the_tagged_request_and_decodes_the_report():
    transport, requests = recording_transport(lambda request, n: _json(PENDING, 202))
    with Client(URL, "k", transport=transport) as client:
        report = client.request_report("job-1", "n-1", QaRequest(question="Who is Hyde?"))
    assert report == PENDING
    (request,) = requests
    assert (request.method, request.url.path) == ("POST", REPORTS)
    assert json.loads(request.content) == {"kind": "qa", "question": "Who is Hyde?"}


def test_reports_lists_by_kind_and_decodes_every_body_kind():
    evidence = ReportRead(id="r-2", job_id="job-1", node_id="n-1", kind="evidence", status="done",
                          request=EvidenceRequest(),
                          body=EvidenceReport(summary="", sentences=(), unsupported=0), created=1.0)
    transport, requests = recording_transport(lambda request, n: _json([DONE, evidence]))
    with Client(URL, "k", transport=transport) as client:
        listed = client.reports("job-1", "n-1", kind="critique")
    assert [r.body for r in listed] == [DONE.body, evidence.body]
    assert requests[0].url.params["kind"] == "critique"


def test_wait_report_polls_until_the_report_is_done(monkeypatch):
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    transport, requests = recording_transport(lambda request, n: _json(PENDING if n < 3 else DONE))
    with Client(URL, "k", transport=transport) as client:
        assert client.wait_report(PENDING, poll=0) == DONE
    assert [r.url.path for r in requests] == [f"{REPORTS}/r-1"] * 3


def test_wait_report_gives_up_after_its_timeout(monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(client_module.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    transport, _ = recording_transport(lambda request, n: _json(PENDING))
    with Client(URL, "k", transport=transport) as client, pytest.raises(WaitTimeout):
        client.wait_report(PENDING, timeout=25)


@pytest.mark.parametrize(("status", "error"), [(409, Conflict), (422, BadRequest)])
def test_report_errors_raise_the_typed_error(status, error):
    problem = Problem(type="https://recursum.dev/problems/x", title="No", status=status, detail="why")
    transport, _ = recording_transport(lambda request, n: _json(problem, status))
    with Client(URL, "k", transport=transport) as client, pytest.raises(error) as raised:
        client.request_report("job-1", "n-1", CritiqueRequest(summary=3))
    assert raised.value.problem.detail == "why"


def test_the_async_client_requests_and_waits_for_a_report():
    async def scenario():
        transport, requests = recording_transport(
            lambda request, n: _json(PENDING, 202) if n == 1 else _json(DONE))
        async with AsyncClient(URL, "k", transport=transport) as client:
            pending = await client.request_report("job-1", "n-1", CritiqueRequest())
            return await client.wait_report(pending, poll=0), requests

    report, requests = asyncio.run(scenario())
    assert report == DONE
    assert [r.method for r in requests] == ["POST", "GET"]
