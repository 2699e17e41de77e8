"""Metrics move as batches finish, not when a job ends."""

from fake_engine import HeldEngine
from litestar.testing import TestClient
from service_helpers import wait_finished

from recursum.service.api.app import create_app
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_tokens_and_batches_show_while_the_job_still_runs(tmp_path):
    engine = HeldEngine()
    app = create_app(ServiceSettings(api_keys=parse_api_keys("alice:a-secret:summarize")), engine=engine,
                     store=Store(f"sqlite:///{tmp_path / 'live.db'}"))
    with TestClient(app) as client:
        job_id = client.post("/v1/summaries", json={"text": "Alice followed the White Rabbit. She fell."},
                             headers=ALICE).json()["id"]
        assert engine.holding.wait(30)
        metrics = client.get("/metrics").text
        assert client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["status"] == "running"
        assert _metric(metrics, "recursum_generated_tokens_total") > 0
        assert _metric(metrics, "recursum_prompt_tokens_total") > 0
        assert _metric(metrics, "recursum_generation_batch_size_count") == 1
        assert _metric(metrics, "recursum_leased_jobs") == 1
        engine.let_go.set()
        assert wait_finished(client, job_id, ALICE)["status"] == "done"
