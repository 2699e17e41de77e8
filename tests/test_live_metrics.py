"""Metrics move as batches finish, not when a job ends."""

import dataclasses
import threading

from fake_engine import FakeEngine
from litestar.testing import TestClient
from service_helpers import wait_finished

from recursum.service.api.app import create_app
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

ALICE = {"Authorization": "Bearer a-secret"}


class HeldEngine(FakeEngine):
    """Counts each batch as the fake does, then holds its result back until `let_go` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.counted, self.let_go = threading.Event(), threading.Event()

    def generate(self, requests, settings, batch_size, hooks) -> None:
        def held(result) -> None:
            self.counted.set()
            self.let_go.wait(30)
            hooks.on_result(result)

        super().generate(requests, settings, batch_size, dataclasses.replace(hooks, on_result=held))


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def test_tokens_and_batches_show_while_the_job_still_runs(tmp_path):
    engine = HeldEngine()
    app = create_app(ServiceSettings(api_keys=parse_api_keys("alice:a-secret:summarize")), engine=engine,
                     store=Store(f"sqlite:///{tmp_path / 'live.db'}"))
    with TestClient(app) as client:
        job_id = client.post("/v1/summaries", json={"text": "Alice followed the White Rabbit. She fell."},
                             headers=ALICE).json()["id"]
        assert engine.counted.wait(30)
        metrics = client.get("/metrics").text
        assert client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["status"] == "running"
        assert _metric(metrics, "recursum_generated_tokens_total") > 0
        assert _metric(metrics, "recursum_prompt_tokens_total") > 0
        assert _metric(metrics, "recursum_generation_batch_size_count") == 1
        assert _metric(metrics, "recursum_leased_jobs") == 1
        engine.let_go.set()
        assert wait_finished(client, job_id, ALICE)["status"] == "done"
