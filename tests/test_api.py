"""Route behaviour with Litestar's test client, a real store and the tiny model."""

import time

import msgspec
import pytest
from litestar.testing import TestClient

from recursum.schemas.events import HeightStarted
from recursum.service.api.app import create_app
from recursum.service.engine.facade import ModelEngine
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.jobs.views import served_event
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

STORY = "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall and found a golden key."
                    for i in range(8))
KEYS = "alice:a-secret:summarize,bob:b-secret:summarize,eve:e-secret:evaluate,root:r-secret:admin"
ALICE = {"Authorization": "Bearer a-secret"}
BOB = {"X-API-Key": "b-secret"}
OPTIONS = {"chunk_tokens": 40, "summary_tokens": 8}


@pytest.fixture(scope="module")
def engine(tiny_model_dir, evidence_scorer):
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none"))
    return ModelEngine(runtime, evidence_scorer)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'api.db'}")


def _client(engine, store, **overrides):
    settings = ServiceSettings(api_keys=parse_api_keys(KEYS), max_body_bytes=50_000, **overrides)
    return TestClient(create_app(settings, engine=engine, store=store))


@pytest.fixture
def client(engine, store):
    with _client(engine, store) as client:
        yield client


def _submit(client, headers=ALICE, **body):
    payload = {"text": STORY, "title": "Alice", "options": OPTIONS} | body
    return client.post("/v1/summaries", json=payload, headers=headers)


def _wait(client, job_id, headers=ALICE, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/v1/summaries/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_a_submitted_document_is_summarized_to_a_root(client):
    accepted = _submit(client)
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["url"] == f"/v1/summaries/{body['id']}"
    job = _wait(client, body["id"])
    assert job["status"] == "done"
    assert job["root"] and job["summary"] is not None
    assert all(p["done"] == p["total"] for p in job["progress"])


def test_the_tree_and_a_leaf_with_its_source_are_served(client):
    job_id = _submit(client).json()["id"]
    _wait(client, job_id)
    tree = client.get(f"/v1/summaries/{job_id}/tree", headers=ALICE).json()
    assert tree["heights"][-1] == [tree["root"]]
    leaf_id = tree["heights"][0][0]
    leaf = client.get(f"/v1/summaries/{job_id}/nodes/{leaf_id}?include=source", headers=ALICE).json()
    span = leaf["node"]["span"]
    assert leaf["source"] == STORY[span[0]:span[1]]


def test_plain_text_and_multipart_uploads_are_accepted(client):
    text = client.post("/v1/summaries?title=Plain", content=STORY.encode(),
                       headers=ALICE | {"Content-Type": "text/plain"})
    assert text.status_code == 202
    upload = client.post("/v1/summaries", headers=ALICE, files={"file": ("book.txt", STORY.encode())},
                         data={"options": msgspec.json.encode(OPTIONS).decode()})
    assert upload.status_code == 202
    assert _wait(client, upload.json()["id"])["title"] == "book.txt"


def test_events_stream_ends_with_the_finished_job(client):
    job_id = _submit(client).json()["id"]
    with client.stream("GET", f"/v1/summaries/{job_id}/events", headers=ALICE) as response:
        kinds = [line.split(":", 1)[1].strip() for line in response.iter_lines()
                 if line.startswith("event:")]
    assert kinds[-1] == "finished"
    assert kinds[0] in ("state", "finished")
    late = client.get(f"/v1/summaries/{job_id}/events", headers=ALICE).text
    assert "event: finished" in late


def test_a_job_whose_summary_length_fills_the_window_fails_alone(client):
    too_long = _submit(client, options={"chunk_tokens": 40, "summary_tokens": 4000}).json()["id"]
    fine = _submit(client).json()["id"]
    failed = _wait(client, too_long)
    assert failed["status"] == "failed" and "context window" in failed["error"]
    assert _wait(client, fine)["status"] == "done"


def test_best_of_n_without_a_reward_adapter_keeps_the_best_grounded_summary_and_stores_the_rest(client):
    body = _submit(client, options=OPTIONS | {"best_of": 3}).json()
    assert any("no reward adapter is loaded" in note for note in body["notes"])
    assert _wait(client, body["id"])["status"] == "done"
    nodes = client.get(f"/v1/summaries/{body['id']}/tree", headers=ALICE).json()["nodes"]
    candidates = [c for node in nodes for c in node["candidates"]]
    sources = {"greedy", "sample:1", "sample:2", "resample:1"}
    assert candidates and {c["source"] for c in candidates} <= sources
    assert all(c["reward"] is None and c["summary"] for c in candidates)


def test_a_key_sees_only_its_own_jobs_unless_admin(client):
    job_id = _submit(client).json()["id"]
    assert client.get(f"/v1/summaries/{job_id}", headers=BOB).status_code == 404
    assert client.get(f"/v1/summaries/{job_id}", headers={"X-API-Key": "r-secret"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": "wrong"}, 401), ({"X-API-Key": "e-secret"}, 403)],
)
def test_submitting_needs_a_key_with_the_summarize_scope(client, store, headers, status):
    before = store.counts()
    response = _submit(client, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    assert store.counts() == before


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"json": {"text": "", "options": OPTIONS}}, 422),
        ({"json": {"text": "  \n\t ", "options": OPTIONS}}, 422),
        ({"json": {"text": STORY, "options": {"batch_size": 0}}}, 400),
        ({"json": {"txt": STORY}}, 400),
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b"caf\xe9", "headers": {"Content-Type": "text/plain"}}, 400),
        ({"content": ("a" + "\u0301" * 5000).encode(), "headers": {"Content-Type": "text/plain"}}, 422),
        ({"content": b"<a/>", "headers": {"Content-Type": "application/xml"}}, 415),
        ({"content": b"x" * 60_000, "headers": {"Content-Type": "text/plain"}}, 413),
    ],
)
def test_bad_submissions_get_a_problem_and_leave_the_store_unchanged(client, store, request_kwargs, status):
    before = store.counts()
    headers = ALICE | request_kwargs.pop("headers", {})
    response = client.post("/v1/summaries", headers=headers, **request_kwargs)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    assert store.counts() == before


def test_unknown_job_is_404(client):
    response = client.get("/v1/summaries/nope", headers=ALICE)
    assert response.status_code == 404
    assert response.json()["title"] == "Not found"


def test_a_full_queue_answers_429_with_retry_after(engine, store):
    with _client(engine, store, max_queue=0) as client:
        response = _submit(client)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_a_full_queue_refuses_before_the_body_is_read_or_normalized(engine, store):
    unsafe = ("a" + "\u0301" * 5000).encode()  # a 422 if it were decoded and normalized
    with _client(engine, store, max_queue=0) as client:
        response = client.post("/v1/summaries", content=unsafe,
                               headers=ALICE | {"Content-Type": "text/plain"})
    assert response.status_code == 429


def test_without_a_loaded_model_queued_jobs_cancel_at_once_and_readiness_fails(store, tmp_path):
    settings = ServiceSettings(api_keys=parse_api_keys(KEYS), model=ModelSpec(base=str(tmp_path / "absent")))
    with TestClient(create_app(settings, store=store)) as client:
        job_id = _submit(client).json()["id"]
        assert client.delete(f"/v1/summaries/{job_id}", headers=ALICE).json()["outcome"] == "cancelled"
        assert client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["status"] == "cancelled"
        assert "event: finished" in client.get(f"/v1/summaries/{job_id}/events", headers=ALICE).text
        deadline = time.time() + 10
        while (ready := client.get("/readyz")).status_code != 503 or "failed to load" not in ready.text:
            assert time.time() < deadline, ready.text
            time.sleep(0.05)


def test_internal_errors_reach_the_owner_without_their_details(engine, store, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("SELECT secret FROM internals")

    monkeypatch.setattr(engine, "generate", explode)
    with _client(engine, store) as client:
        job = _wait(client, _submit(client).json()["id"])
    assert job["status"] == "failed"
    assert "secret" not in job["error"] and "server log" in job["error"]


def test_deleting_a_finished_job_removes_it(client):
    job_id = _submit(client).json()["id"]
    _wait(client, job_id)
    assert client.delete(f"/v1/summaries/{job_id}", headers=ALICE).json()["outcome"] == "deleted"
    assert client.get(f"/v1/summaries/{job_id}", headers=ALICE).status_code == 404


def test_health_readiness_and_metrics_need_no_key(client):
    job_id = _submit(client).json()["id"]
    _wait(client, job_id)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    metrics = client.get("/metrics").text
    assert 'recursum_jobs_total{status="done"}' in metrics
    assert "recursum_nodes_generated_total" in metrics
    assert "recursum_model_info" in metrics


def test_openapi_schema_is_served(client):
    assert "/v1/summaries" in client.get("/schema/openapi.json").json()["paths"]


class _Receiver:
    """A loopback HTTP server that fails its first request, then records what it gets."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(500 if len(received) == 1 else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.integration  # serves the callback receiver on a thread
def test_a_callback_is_signed_as_a_standard_webhook_retried_and_every_attempt_recorded(engine, store):
    from standardwebhooks import Webhook

    from recursum.service.jobs.signing import signing_secret
    from recursum.service.settings import hash_secret

    receiver = _Receiver()
    with _client(engine, store, callback_hosts=frozenset({f"127.0.0.1:{receiver.server.server_port}"}),
                 callback_private=True) as client:
        job_id = _submit(client, callback_url=receiver.url).json()["id"]
        _wait(client, job_id)
        deadline = time.time() + 20
        while len(client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["callbacks"]) < 2:
            assert time.time() < deadline, "callback was not retried"
            time.sleep(0.1)
        attempts = client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["callbacks"]
    assert [a["outcome"] for a in attempts] == ["rejected", "delivered"]
    (first_headers, first_body), (headers, body) = receiver.received
    assert first_headers["webhook-id"] == headers["webhook-id"] and first_body == body  # one message, retried
    verified = Webhook(signing_secret(hash_secret("a-secret"))).verify(body, headers)
    assert verified["job"]["status"] == "done"
    receiver.server.shutdown()


def test_a_callback_from_a_caller_without_a_key_is_refused_at_submit(engine, store):
    with _client(engine, store, dev_mode=True, callback_hosts=frozenset({"127.0.0.1:8080"})) as client:
        response = _submit(client, callback_url="http://127.0.0.1:8080/hook")
    assert response.status_code == 422
    assert "never sent unsigned" in response.json()["detail"]
    assert store.counts()["jobs"] == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/hook", "http://127.0.0.1:abc/hook", "ftp://127.0.0.1/x"])
def test_a_malformed_callback_url_is_refused_at_submit(engine, store, url):
    with _client(engine, store, callback_hosts=frozenset({"127.0.0.1"})) as client:
        response = _submit(client, callback_url=url)
    assert response.status_code == 422
    assert store.counts()["jobs"] == 0


def test_a_callback_to_a_host_off_the_allowlist_is_refused_at_submit(client, store):
    before = store.counts()
    response = _submit(client, callback_url="http://169.254.169.254/latest/meta-data")
    assert response.status_code == 422
    assert "RECURSUM_CALLBACK_HOSTS" in response.json()["detail"]
    assert store.counts() == before


def test_jobs_waiting_together_share_generation_batches(engine, store):
    from recursum.service.engine.pipeline.document import make_document
    from recursum.service.engine.pipeline.tree import TreeConfig
    from recursum.service.store.records import JobRecord

    config = TreeConfig(chunk_tokens=40, summary_tokens=8, batch_size=16)
    for name in ("first", "second"):
        document = make_document(STORY.replace("Alice", f"Alice the {name}"))
        store.jobs.put_document(document)
        store.jobs.create_job(JobRecord(id=name, owner="alice", document_id=document.id, title=name,
                                   config=config, created=time.time()))
    leaves_per_job = 4
    with _client(engine, store) as client:
        assert _wait(client, "first")["status"] == "done"
        assert _wait(client, "second")["status"] == "done"
        registry = client.app.state.metrics.registry
    bucket = {"le": str(float(leaves_per_job))}
    small = registry.get_sample_value("recursum_generation_batch_size_bucket", bucket)
    total = registry.get_sample_value("recursum_generation_batch_size_count")
    assert small < total  # some batch held more nodes than one job's leaves: the jobs shared it


def test_a_job_never_learns_that_another_tenant_summarized_the_same_text(client, store):
    _wait(client, _submit(client).json()["id"])
    again = _submit(client, headers=BOB).json()["id"]  # every generation now comes from alice's cache
    _wait(client, again, headers=BOB)
    assert any(node.cached for node in store.nodes.job_nodes(again))  # the store knows, for operators
    tree = client.get(f"/v1/summaries/{again}/tree", headers=BOB).json()
    assert not any(node.get("cached") for node in tree["nodes"])
    job = store.jobs.get_job(again)
    assert served_event(HeightStarted(height=0, nodes=3, cached=3), job, job.progress).cached == 0
