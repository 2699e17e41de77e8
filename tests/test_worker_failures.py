"""A job that breaks generation takes down nothing but itself; a job that kills its replica is given up."""

import time

import pytest
import sqlalchemy as sa
from fake_engine import FakeEngine
from litestar.testing import TestClient
from service_helpers import wait_finished

from recursum.service.api.app import create_app
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'worker.db'}")


def _client(engine, store, **settings) -> TestClient:
    keys = parse_api_keys("alice:a-secret:summarize")
    return TestClient(create_app(ServiceSettings(api_keys=keys, **settings), engine=engine, store=store))


def _wait(client, job_id: str) -> dict:
    return wait_finished(client, job_id, ALICE)


def _submit(client, text: str) -> str:
    return client.post("/v1/summaries", json={"text": text}, headers=ALICE).json()["id"]


def test_a_job_whose_batch_fails_fails_alone_and_the_others_finish(store):
    with _client(FakeEngine(poison="POISON"), store) as client:
        doomed = _submit(client, "The POISON pill was swallowed. Then nothing.")
        spared = _submit(client, "Alice followed the White Rabbit. She fell.")
        assert _wait(client, doomed)["status"] == "failed"
        assert _wait(client, spared)["status"] == "done"


def test_a_job_claimed_past_the_attempt_limit_is_failed_with_the_reason(store):
    document = make_document("Alice followed the White Rabbit.")
    store.jobs.put_document(document)
    store.jobs.create_job(JobRecord(id="killer", owner="alice", document_id=document.id, title="",
                                    config=TreeConfig(), created=time.time(), attempts=3))
    with _client(FakeEngine(), store, max_attempts=3) as client:
        job = _wait(client, "killer")
    assert job["status"] == "failed"
    assert "gave up after 3 attempts" in job["error"]


class _StoreHiccupEngine(FakeEngine):
    """The first batch meets a database error (SQLite busy, a PostgreSQL failover)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def generate(self, requests, settings, batch_size, hooks):
        self.batches += 1
        if self.batches == 1:
            raise sa.exc.OperationalError("INSERT INTO job_nodes", {}, Exception("database is locked"))
        return super().generate(requests, settings, batch_size, hooks)


def test_a_database_error_releases_the_job_to_be_resumed_not_failed(store):
    engine = _StoreHiccupEngine()
    with _client(engine, store) as client:
        job = _wait(client, _submit(client, "Alice followed the White Rabbit. She fell."))
    assert job["status"] == "done"
    assert engine.batches == 2
    assert store.jobs.get_job(job["id"]).attempts == 1  # the interrupted claim was not counted


def test_a_graceful_stop_releases_running_jobs_without_counting_an_attempt(store):
    document = make_document("Alice followed the White Rabbit.")
    store.jobs.put_document(document)
    store.jobs.create_job(JobRecord(id="long", owner="alice", document_id=document.id, title="",
                                    config=TreeConfig(), created=time.time()))
    [claimed] = store.jobs.claim_jobs("replica-a", 1, lease_seconds=60)
    assert claimed.attempts == 1
    store.jobs.release_jobs("replica-a", ["long"])
    [again] = store.jobs.claim_jobs("replica-b", 1, lease_seconds=60)  # at once, no lease to wait out
    assert again.attempts == 1
