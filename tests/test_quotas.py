"""Per-key limits: one key cannot hold the whole queue or budget, and a job over the per-job budget is told
its estimate and the limit."""

import time

import pytest
from fake_engine import FakeEngine
from litestar.testing import TestClient
from service_helpers import held_job

from recursum.service.api.app import create_app
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.estimate import estimate_work
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}
BOB = {"Authorization": "Bearer b-secret"}
BOOK = "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall and found a golden key." * 5
                   for i in range(200))


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'quotas.db'}")


def _client(store, **settings) -> TestClient:
    keys = parse_api_keys("alice:a-secret:summarize,bob:b-secret:summarize")
    app = create_app(ServiceSettings(api_keys=keys, **settings), engine=FakeEngine(), store=store)
    return TestClient(app)


def _running_job_of_alice(store: Store, work_tokens: int = 0) -> None:
    held_job(store, work_tokens=work_tokens)


def test_a_key_at_its_job_limit_gets_429_and_another_key_still_submits(store):
    _running_job_of_alice(store)
    with _client(store, max_jobs_per_key=1) as client:
        refused = client.post("/v1/summaries", json={"text": "A new story."}, headers=ALICE)
        accepted = client.post("/v1/summaries", json={"text": "A new story."}, headers=BOB)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "1 jobs queued or running" in refused.json()["detail"]
    assert accepted.status_code == 202


def test_the_key_limit_is_checked_before_the_body_is_read(store):
    _running_job_of_alice(store)
    bomb = ("a" + "\u0301" * 5000).encode()  # a 422 if it were decoded
    with _client(store, max_jobs_per_key=1) as client:
        response = client.post("/v1/summaries", content=bomb, headers=ALICE | {"Content-Type": "text/plain"})
    assert response.status_code == 429


def test_a_job_over_the_per_job_budget_is_refused_with_its_estimate_and_the_limit(store):
    with _client(store, max_job_tokens=5_000) as client:
        response = client.post("/v1/summaries", json={"text": BOOK}, headers=ALICE)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "would cost about" in detail and "chunks" in detail and "limit per job is 5,000 tokens" in detail
    assert store.counts()["jobs"] == 0


def test_a_key_whose_unfinished_jobs_hold_its_token_budget_gets_429(store):
    book = estimate_work(make_document(BOOK).text, TreeConfig()).total_tokens
    _running_job_of_alice(store, work_tokens=9_000)
    with _client(store, max_key_tokens=book + 8_000) as client:
        refused = client.post("/v1/summaries", json={"text": BOOK}, headers=ALICE)
        accepted = client.post("/v1/summaries", json={"text": BOOK}, headers=BOB)
    assert refused.status_code == 429
    assert f"already hold 9,000 of its {book + 8_000:,}" in refused.json()["detail"]
    assert accepted.status_code == 202


def test_the_estimate_counts_the_real_chunks_and_every_height_up_to_the_root():
    config = TreeConfig(chunk_tokens=100, summary_tokens=50, merge_tokens=200, max_children=4, root_words=0)
    estimate = estimate_work(BOOK, config)
    assert estimate.chunks == len(chunk_document(BOOK, 100))
    assert estimate.nodes[0] == estimate.chunks and estimate.nodes[-1] == 1
    assert all(upper < lower for lower, upper in zip(estimate.nodes, estimate.nodes[1:], strict=False))
    assert estimate.generated_tokens == sum(estimate.nodes) * 50
    tripled = estimate_work(BOOK, TreeConfig(chunk_tokens=100, summary_tokens=50, merge_tokens=200,
                                             max_children=4, root_words=0, best_of=3))
    assert tripled.total_tokens == 3 * estimate.total_tokens


def test_an_estimate_with_a_measured_summary_length_counts_fewer_tokens_in_the_same_shape():
    config = TreeConfig(chunk_tokens=100, summary_tokens=50)
    full, measured = estimate_work(BOOK, config), estimate_work(BOOK, config, summary_length=20)
    assert measured.nodes == full.nodes
    # The top height's summaries fit in root_words: the root composes them and generates nothing.
    assert measured.generated_tokens == (sum(full.nodes) - 1) * 20 < full.generated_tokens
    assert measured.prompt_tokens < full.prompt_tokens


def test_an_estimate_answers_without_queueing_and_counts_the_real_chunks(store):
    with _client(store) as client:
        response = client.post("/v1/estimates", json={"text": BOOK, "options": {"chunk_tokens": 100}},
                               headers=ALICE)
    assert response.status_code == 200
    estimate = response.json()
    assert estimate["chunks"] == len(chunk_document(make_document(BOOK).text, 100))
    assert estimate["nodes"][0] == estimate["chunks"] and estimate["prompt_tokens"] > 0
    assert store.counts()["jobs"] == 0 and store.counts()["documents"] == 0


def test_an_estimate_gives_seconds_once_the_replica_has_measured_a_batch(store):
    with _client(store) as client:
        before = client.post("/v1/estimates", json={"text": BOOK}, headers=ALICE).json()
        job = client.post("/v1/summaries", json={"text": "Alice ran. She fell."}, headers=ALICE).json()["id"]
        deadline = time.time() + 10
        while client.get(f"/v1/summaries/{job}", headers=ALICE).json()["status"] != "done":
            assert time.time() < deadline
            time.sleep(0.05)
        after = client.post("/v1/estimates", json={"text": BOOK}, headers=ALICE).json()
    assert before["basis"] == "none" and before["seconds"] is None  # the fake's probe measures nothing
    assert after["basis"] == "measured" and after["seconds"] > 0
