"""Adapter bundles switched without a restart (/v1/admin/adapters): jobs keep the bundle they started on, a
refused bundle changes nothing, rollback, a second replica following the store (on the fake engine), and
the nodes of jobs before and after a switch on the tiny model."""

import threading
import time

from bundles import make_bundle
from fake_engine import FakeEngine, HeldEngine, HoldsResults
from litestar.testing import TestClient
from service_helpers import wait_finished

from recursum.service.api.app import create_app
from recursum.service.engine.facade import ModelEngine
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

KEYS = parse_api_keys("alice:a-secret:summarize,root:r-secret:admin")
ALICE = {"Authorization": "Bearer a-secret"}
ROOT = {"Authorization": "Bearer r-secret"}
STORY = {"text": "Alice followed the White Rabbit. She fell."}


def _app(store: Store, engine: FakeEngine, replica: str = "a"):
    return TestClient(create_app(ServiceSettings(api_keys=KEYS, replica_id=replica), engine=engine,
                                 store=store))


def _leaf(client, job_id: str) -> dict:
    return client.get(f"/v1/summaries/{job_id}/tree", headers=ALICE).json()["nodes"][0]


def test_a_job_running_across_a_switch_keeps_its_bundle_and_later_jobs_use_the_new_one(tmp_path):
    engine = HeldEngine()
    with _app(Store(f"sqlite:///{tmp_path / 'swap.db'}"), engine) as client:
        before = client.post("/v1/summaries", json=STORY, headers=ALICE).json()["id"]
        assert engine.holding.wait(30)
        answer = {}
        switching = threading.Thread(target=lambda: answer.update(response=client.post(
            "/v1/admin/adapters", json={"directory": "/bundles/two"}, headers=ROOT)))
        switching.start()
        time.sleep(0.5)
        assert "response" not in answer, "the switch waits for the running batch to drain"
        engine.let_go.set()
        switching.join(30)
        assert answer["response"].status_code == 200, answer["response"].text
        adapters = answer["response"].json()
        assert adapters["served"]["version"] == adapters["serving_here"] == "two"
        assert adapters["previous"]["version"] == "none" and adapters["previous"]["activated_by"] == \
            "configuration"
        assert wait_finished(client, before, ALICE)["bundle"] == "none"
        assert _leaf(client, before)["adapter_version"] is None
        after = client.post("/v1/summaries", json=STORY, headers=ALICE).json()["id"]
        assert wait_finished(client, after, ALICE)["bundle"] == "two"
        assert _leaf(client, after)["adapter_version"] == "two"
        assert 'bundle="two"' in client.get("/metrics").text


def test_a_refused_bundle_answers_the_reason_and_changes_nothing(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'refused.db'}")
    with _app(store, FakeEngine()) as client:
        refused = client.post("/v1/admin/adapters", json={"directory": "/bundles/broken"}, headers=ROOT)
        assert refused.status_code == 422 and "no manifest.json" in refused.json()["detail"]
        relative = client.post("/v1/admin/adapters", json={"directory": "bundles/two"}, headers=ROOT)
        assert relative.status_code == 422 and "absolute" in relative.json()["detail"]
        forbidden = client.post("/v1/admin/adapters", json={"directory": "/b/two"}, headers=ALICE)
        assert forbidden.status_code == 403
        adapters = client.get("/v1/admin/adapters", headers=ROOT).json()
        assert adapters["served"] is None and adapters["serving_here"] == "none"
        assert store.adapters.latest() == []
        assert 'recursum_adapter_switches_total{outcome="refused"} 1.0' in client.get("/metrics").text


def test_rollback_serves_the_bundle_before_the_current_one(tmp_path):
    with _app(Store(f"sqlite:///{tmp_path / 'rollback.db'}"), FakeEngine()) as client:
        assert client.post("/v1/admin/adapters/rollback", headers=ROOT).status_code == 409
        for name in ("one", "two"):
            assert client.post("/v1/admin/adapters", json={"directory": f"/b/{name}"},
                               headers=ROOT).status_code == 200
        rolled = client.post("/v1/admin/adapters/rollback", headers=ROOT).json()
        assert rolled["serving_here"] == rolled["served"]["version"] == "one"
        assert rolled["served"]["activated_by"] == "root (rollback of two)"
        assert rolled["previous"]["version"] == "two"
        assert client.post("/v1/admin/adapters", json={"directory": "none"}, headers=ROOT).json()[
            "serving_here"] == "none"


def test_a_second_replica_follows_the_activation_in_the_store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'replicas.db'}")
    follower = FakeEngine()
    with _app(store, FakeEngine(), "a") as first, _app(store, follower, "b") as second:
        assert first.post("/v1/admin/adapters", json={"directory": "/b/two"}, headers=ROOT).status_code == 200
        deadline = time.time() + 20
        while second.get("/v1/admin/adapters", headers=ROOT).json()["serving_here"] != "two":
            assert time.time() < deadline, "replica b never followed the store"
            time.sleep(0.1)
        job = second.post("/v1/summaries", json=STORY, headers=ALICE).json()["id"]
        assert wait_finished(second, job, ALICE)["bundle"] == "two"
        assert 'outcome="followed"' in second.get("/metrics").text


class HeldModelEngine(HoldsResults, ModelEngine):
    """The tiny model, holding its results back."""


def test_on_the_model_each_node_carries_the_adapter_of_the_bundle_its_job_started_on(
        tiny_model_dir, evidence_scorer, tmp_path):
    one = make_bundle(tiny_model_dir, tmp_path / "one", {"chunk": 1})
    two = make_bundle(tiny_model_dir, tmp_path / "two", {"chunk": 2, "merge": 3})
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", bundle=str(one)))
    engine = HeldModelEngine(runtime, evidence_scorer)
    story = {"text": "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall." for i in range(6)),
             "options": {"chunk_tokens": 40, "summary_tokens": 8}}
    with _app(Store(f"sqlite:///{tmp_path / 'model.db'}"), engine) as client:
        before = client.post("/v1/summaries", json=story, headers=ALICE).json()["id"]
        assert engine.holding.wait(60)
        switching = threading.Thread(target=lambda: client.post(
            "/v1/admin/adapters", json={"directory": str(two)}, headers=ROOT))
        switching.start()
        engine.let_go.set()
        switching.join(60)
        assert client.get("/v1/admin/adapters", headers=ROOT).json()["serving_here"] == engine.bundle.version
        unreadable = client.post("/v1/admin/adapters", json={"directory": "/" + "x" * 300}, headers=ROOT)
        assert unreadable.status_code == 422 and "cannot read" in unreadable.json()["detail"]
        after = client.post("/v1/summaries", json=story, headers=ALICE).json()["id"]
        for job in (before, after):
            assert wait_finished(client, job, ALICE, timeout=120)["status"] == "done"
        old, new = (client.get(f"/v1/summaries/{job}/tree", headers=ALICE).json()["nodes"]
                    for job in (before, after))
    first, second = runtime.adapter_set, engine.runtime.adapter_set
    assert {(n["role"], n["adapter_version"]) for n in old if not n["composed"]} <= {
        ("chunk", first.fingerprints["chunk"]), ("merge", None)}
    assert {(n["role"], n["adapter_version"]) for n in new if not n["composed"]} <= {
        ("chunk", second.fingerprints["chunk"]), ("merge", second.fingerprints["merge"])}
    assert any(n["role"] == "merge" for n in new), "the tree has merges"
    assert not {n["key"] for n in old} & {n["key"] for n in new}, "a node's key names its adapter"


def test_a_job_resumed_after_a_crash_goes_back_on_the_bundle_it_started_on(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'resume.db'}")
    store.adapters.activate("/b/two", "two", "root")
    store.adapters.activate("/b/one", "one", "root")  # served now; the job started before this
    document = make_document("Alice followed the White Rabbit. She fell.")
    store.jobs.put_document(document)
    store.jobs.create_job(JobRecord(id="resumed", owner="alice", document_id=document.id, title="",
                                    config=TreeConfig(), created=time.time(), status="running",
                                    started=time.time(), bundle="two"))
    engine = FakeEngine()
    with _app(store, engine) as client:
        assert wait_finished(client, "resumed", ALICE)["bundle"] == "two"
        assert _leaf(client, "resumed")["adapter_version"] == "two"
        assert client.get("/v1/admin/adapters", headers=ROOT).json()["serving_here"] == "one"
