"""Bad input on any path is a 4xx problem, never a 500 and never a stored row: bounded fields, NUL
characters anywhere, multipart fields of the wrong kind."""

import pytest
from fake_engine import FakeEngine
from litestar.testing import TestClient

from recursum.service.api.app import create_app
from recursum.service.api.nul import NulScanner
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}
JSON = ALICE | {"Content-Type": "application/json"}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'inputs.db'}")


@pytest.fixture
def client(store):
    keys = parse_api_keys("alice:a-secret:summarize+evaluate")
    settings = ServiceSettings(api_keys=keys, callback_hosts=frozenset({"hooks.example.org"}))
    with TestClient(create_app(settings, engine=FakeEngine(), store=store)) as client:
        yield client


def _refused(response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


@pytest.mark.parametrize("body", [
    {"text": "A story.", "title": "t" * 513},
    {"text": "A story.", "callback_url": "https://hooks.example.org/" + "a" * 2048},
])
def test_a_title_or_callback_url_past_its_bound_is_refused(client, store, body):
    _refused(client.post("/v1/summaries", json=body, headers=ALICE))
    assert store.counts()["jobs"] == 0


def test_a_long_title_is_refused_however_the_document_is_sent(client, store):
    response = client.post("/v1/summaries", params={"title": "t" * 513}, content=b"A story.",
                           headers=ALICE | {"Content-Type": "text/plain"})
    _refused(response)
    assert store.counts()["jobs"] == 0


@pytest.mark.parametrize("body", [
    b'{"text": "Alice\\u0000 ran."}',
    b'{"text": "Alice ran.", "title": "\\u0000"}',
    b'{"text": "Alice ran.", "options": {"context": "none\\u0000"}}',
])
def test_a_json_nul_escape_anywhere_in_the_body_is_refused(client, store, body):
    response = client.post("/v1/summaries", content=body, headers=JSON)
    assert "NUL" in _refused(response)["detail"]
    assert store.counts()["jobs"] == 0


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(client):
    body = b'{"text": "In C, write \\\\u0000 for the escape."}'
    response = client.post("/v1/summaries", content=body, headers=JSON)
    assert response.status_code == 202


@pytest.mark.parametrize("path", ["/v1/summaries/abc%00def", "/v1/summaries/abc?x=%00"])
def test_a_nul_in_the_url_is_refused(client, path):
    _refused(client.get(path, headers=ALICE))


def test_a_nul_in_a_comparison_is_refused_before_it_reaches_the_store(client, store):
    before = store.counts()
    body = b'{"task": "lease", "preference": 0, "rationale": "fine\\u0000"}'
    _refused(client.post("/v1/comparisons", content=body, headers=JSON))
    assert store.counts() == before


@pytest.mark.parametrize("field", ["title", "options"])
def test_a_multipart_text_field_sent_as_a_file_is_a_400(client, store, field):
    files = {"file": ("story.txt", b"Alice ran."), field: ("x.json", b"{}")}
    detail = _refused(client.post("/v1/summaries", files=files, headers=ALICE))["detail"]
    assert f"`{field}` must be a text field" in detail
    assert store.counts()["jobs"] == 0


@pytest.mark.parametrize("backslashes", [1, 2, 3, 14, 21, 22])
@pytest.mark.parametrize("cut", range(0, 30, 3))
def test_the_nul_scan_counts_backslashes_across_any_chunk_boundary(backslashes, cut):
    body = b'{"title":"a' + b"\\" * backslashes + b'u0000 b"}'
    scanner = NulScanner()
    found = scanner.feed(body[:cut]) | scanner.feed(body[cut:])
    assert found is (backslashes % 2 == 1)


def test_a_run_of_backslashes_across_many_chunks_keeps_its_parity():
    scanner = NulScanner()
    assert not any(scanner.feed(b"\\" * 65535) for _ in range(3))  # one run, 196,605 long: odd
    assert scanner.feed(b"u0000")

