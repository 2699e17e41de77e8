"""Route services and the job worker against a fake engine: they need nothing of the model but its
interface."""

import time

import pytest
from fake_engine import CONTEXT_WINDOW, FakeEngine
from litestar.testing import TestClient
from service_helpers import wait_finished

from recursum.schemas.reports import CritiqueRequest, EvidenceRequest
from recursum.service.api.app import create_app
from recursum.service.api.auth import Principal
from recursum.service.api.problems import NotReady
from recursum.service.api.reports.service import ReportService
from recursum.service.engine.facade import ModelEngine
from recursum.service.engine.interface import Engine
from recursum.service.jobs.reports import finish_pending_reports
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

STORY = "Alice followed the White Rabbit. She fell down a deep hole. The Queen shouted."
ALICE = {"Authorization": "Bearer a-secret"}
EVE = Principal(name="eve", scopes=frozenset({"evaluate"}))


def _protocol_members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


def test_the_fake_engine_has_every_member_of_the_interface():
    assert {"start", "generate", "report", "health", "describe", "info"} <= _protocol_members(Engine)
    assert _protocol_members(Engine) - set(dir(FakeEngine())) == set()


def test_the_model_engine_has_every_member_of_the_interface():
    assert _protocol_members(Engine) - set(dir(ModelEngine)) == {"last_probe"}  # set on each instance


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'routes.db'}")


def _client(engine, store):
    settings = ServiceSettings(api_keys=parse_api_keys("alice:a-secret:summarize+evaluate"))
    return TestClient(create_app(settings, engine=engine, store=store))


def _engine_loaded(client) -> None:
    """The worker thread takes its engine as it starts; wait for it."""
    deadline = time.time() + 10
    while client.app.state.worker.engine is None:
        assert time.time() < deadline, "the worker never took its engine"
        time.sleep(0.01)


def _finished_job(client, **options) -> dict:
    job_id = client.post("/v1/summaries", json={"text": STORY, "title": "Alice", "options": options},
                         headers=ALICE).json()["id"]
    return wait_finished(client, job_id, ALICE)


def test_the_worker_runs_a_job_through_the_interface_to_its_root(store):
    with _client(FakeEngine(), store) as client:
        job = _finished_job(client)
    assert job["status"] == "done"
    assert job["summary"] == "Alice followed the White Rabbit."
    assert job["progress"] == [{"height": 0, "done": 1, "total": 1}]


def test_a_job_the_engine_refuses_fails_alone_with_the_engines_reason(store):
    with _client(FakeEngine(), store) as client:
        refused = _finished_job(client, summary_tokens=CONTEXT_WINDOW)
        served = _finished_job(client)
    assert refused["status"] == "failed"
    assert "context window" in refused["error"]
    assert served["status"] == "done"


@pytest.mark.parametrize(("scores_rewards", "noted"), [(False, True), (True, False)])
def test_best_of_without_a_reward_adapter_is_noted_at_submit(store, scores_rewards, noted):
    with _client(FakeEngine(scores_rewards=scores_rewards), store) as client:
        _engine_loaded(client)
        body = {"text": STORY, "options": {"best_of": 2}}
        accepted = client.post("/v1/summaries", json=body, headers=ALICE)
    assert accepted.status_code == 202
    assert any("no reward adapter" in note for note in accepted.json()["notes"]) is noted


def test_readiness_follows_the_engines_health_probe(store):
    with _client(FakeEngine(healthy=True), store) as client:
        _engine_loaded(client)
        assert client.get("/readyz").status_code == 200
    with _client(FakeEngine(healthy=False), store) as client:
        _engine_loaded(client)
        assert client.get("/readyz").status_code == 503


@pytest.fixture
def done_job(store) -> tuple[str, str]:
    """A finished job in the store, run by the fake engine; its worker stopped afterwards."""
    with _client(FakeEngine(), store) as client:
        job = _finished_job(client, evaluation=True)
    return job["id"], job["root"]


def test_an_evidence_report_is_built_at_once_by_the_engine(store, done_job):
    job_id, node_id = done_job
    engine = FakeEngine()
    report, status = ReportService(store).create(job_id, node_id, EvidenceRequest(), EVE, engine)
    assert (status, report.status) == (201, "done")
    assert [task.node.id for task in engine.reported] == [node_id]


def test_a_critique_is_stored_pending_without_asking_the_engine(store, done_job):
    job_id, node_id = done_job
    engine = FakeEngine()
    report, status = ReportService(store).create(job_id, node_id, CritiqueRequest(), EVE, engine)
    assert (status, report.status) == (202, "pending")
    assert engine.reported == []


def test_no_report_is_made_while_the_model_loads(store, done_job):
    with pytest.raises(NotReady):
        ReportService(store).create(*done_job, EvidenceRequest(), EVE, None)


def test_a_generated_reports_id_names_the_helper_model(store, done_job):
    one, other = FakeEngine(), FakeEngine()
    other.info = type(other.info)(**{**{f: getattr(other.info, f) for f in other.info.__struct_fields__},
                                     "fingerprint": "another-model"})
    service = ReportService(store)
    first, _ = service.create(*done_job, CritiqueRequest(), EVE, one)
    second, _ = service.create(*done_job, CritiqueRequest(), EVE, other)
    assert first.id != second.id


def test_pending_reports_are_finished_by_the_engine(store, done_job):
    job_id, node_id = done_job
    ReportService(store).create(job_id, node_id, CritiqueRequest(), EVE, FakeEngine())
    assert store.reports.count_pending() == 1
    assert len(finish_pending_reports(store, FakeEngine(), "local")) == 1
    assert store.reports.count_pending() == 0
    (report,) = store.reports.reports_of_node(job_id, node_id)
    assert report.status == "done"


def test_a_failing_engine_fails_its_reports_with_a_public_reason(store, done_job):
    job_id, node_id = done_job
    ReportService(store).create(job_id, node_id, CritiqueRequest(), EVE, FakeEngine())
    assert len(finish_pending_reports(store, FakeEngine(fail_reports=True), "local")) == 1
    (report,) = store.reports.reports_of_node(job_id, node_id)
    assert report.status == "failed"
    assert report.error == "internal error (RuntimeError); the server log has the details"


def test_a_pending_report_leased_to_one_replica_is_not_generated_by_another(store, done_job):
    job_id, node_id = done_job
    ReportService(store).create(job_id, node_id, CritiqueRequest(), EVE, FakeEngine())
    [leased] = store.reports.claim_pending_reports("replica-a", 16, lease_seconds=600)
    engine = FakeEngine()
    assert finish_pending_reports(store, engine, "replica-b") == []
    assert engine.reported == []
    assert store.reports.get_report(leased.id).status == "pending"


def test_tokens_and_batches_are_counted_as_each_batch_finishes(store):
    with _client(FakeEngine(), store) as client:
        _finished_job(client)
        metrics = client.get("/metrics").text
    assert "recursum_generated_tokens_total 5.0" in metrics  # the fake counts the summary's words
    assert "recursum_generation_batch_size_count 1.0" in metrics
    assert 'recursum_jobs_unfinished{state="queued"}' in metrics and "recursum_leased_jobs" in metrics


def test_a_question_reaches_the_job_s_config_and_is_not_offered_to_evaluation(store):
    with _client(FakeEngine(), store) as client:
        job = _finished_job(client, question="Who follows the Rabbit?")
        assert store.jobs.get_job(job["id"]).config.question == "Who follows the Rabbit?"
        both = client.post("/v1/summaries", headers=ALICE, json={
            "text": STORY, "options": {"question": "Who?", "evaluation": True}})
        assert both.status_code == 422 and "question" in both.json()["detail"]
        empty = client.post("/v1/summaries", headers=ALICE, json={"text": STORY, "options": {"question": ""}})
        assert empty.status_code == 400
