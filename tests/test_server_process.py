"""`recursum serve` as a real process: end to end over HTTP, and resuming after `kill -9`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import shared_data
from loopback_server import ServerNotReady, free_port, wait_ready

from recursum.clients.client import Client
from recursum.schemas.events import JobFinished, NodeSummary
from recursum.service.store.repository import Store

pytestmark = pytest.mark.integration  # starts `recursum serve` processes


class Server:
    """A `recursum serve` process on a loopback port, with its own home and database; in dev mode unless
    `env` names API keys."""

    def __init__(self, home: Path, model: Path, database_url: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        dev = [] if "RECURSUM_API_KEYS" in (env or {}) else ["--dev"]
        command = [sys.executable, "-m", "recursum.service.cli.main", "serve", *dev,
                   "--port", str(self.port), "--model", str(model), "--quantization", "none",
                   "--db", database_url]
        env = os.environ | {"RECURSUM_HOME": str(home)} | (env or {})
        self.process = subprocess.Popen(command, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        try:
            wait_ready(self.url, timeout=120, process=self.process)
        except ServerNotReady as error:
            self.stop()
            raise AssertionError(f"{error}: {self.log.read_text()[-2000:]}") from error

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


def test_a_real_book_excerpt_goes_through_the_server_with_sse_and_metrics(tmp_path, tiny_model_dir,
                                                                        database_url):
    excerpt = shared_data("books/jekyll_and_hyde.txt").read_text()[2000:8000]
    server = Server(tmp_path / "home", tiny_model_dir, database_url)
    try:
        with Client(server.url) as client:
            accepted = client.submit(excerpt, "Jekyll", {"chunk_tokens": 200, "summary_tokens": 16})
            events = []
            final = client.wait(accepted.id, on_event=events.append)
        assert final.status == "done" and final.summary is not None
        assert isinstance(events[-1], JobFinished)
        assert any(isinstance(event, NodeSummary) for event in events)
        metrics = httpx.get(f"{server.url}/metrics").text
        assert _metric(metrics, 'recursum_jobs_total{status="done"}') == 1
        assert _metric(metrics, "recursum_generated_tokens_total") > 0
        assert _metric(metrics, "recursum_http_requests_total") > 0
    finally:
        server.stop()


def test_after_kill_9_a_restart_resumes_the_job_without_recomputing_nodes(tmp_path, tiny_model_dir,
                                                                          database_url):
    story = "\n\n".join(f"Part {i}. The Rabbit {i} ran past Alice and the Queen shouted at the Hatter."
                        for i in range(60))
    first = Server(tmp_path / "home", tiny_model_dir, database_url)
    job_id = httpx.post(f"{first.url}/v1/summaries", json={
        "text": story, "options": {"chunk_tokens": 40, "summary_tokens": 48, "batch_size": 1}},
    ).json()["id"]
    store = Store(database_url)
    deadline = time.time() + 120
    while len(store.nodes.job_nodes(job_id)) < 5:
        assert time.time() < deadline, "no nodes were committed"
        time.sleep(0.05)
    first.kill()
    completed_before = {node.key for node in store.nodes.job_nodes(job_id)}
    assert store.jobs.get_job(job_id).status == "running"

    second = Server(tmp_path / "home", tiny_model_dir, database_url)
    try:
        deadline = time.time() + 180
        while (status := httpx.get(f"{second.url}/v1/summaries/{job_id}").json()["status"]) != "done":
            assert status in ("queued", "running"), status
            assert time.time() < deadline, "the resumed job did not finish"
            time.sleep(0.2)
        metrics = httpx.get(f"{second.url}/metrics").text
        nodes = store.nodes.job_nodes(job_id)
        all_keys = {node.key for node in nodes}
        assert completed_before < all_keys
        assert _metric(metrics, "recursum_node_cache_hits_total") >= len(completed_before)
        # A node the screen emptied generated one resample too: an extract now, or a sample that replaced
        # its greedy summary (kept as candidate "greedy").
        resampled = sum(node.extractive or any(c.source == "greedy" for c in node.candidates)
                        for node in nodes if node.key not in completed_before and not node.composed)
        new_generations = len({n.key for n in nodes if not n.composed} - completed_before) + resampled
        assert _metric(metrics, "recursum_node_cache_misses_total") <= new_generations
    finally:
        second.stop()


class _FlakyReceiver:
    """Answers 503 until `accepting` is set, then 204; records each request's `webhook-id` and answer."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.accepting = threading.Event()
        answers = self.answers = []
        accepting = self.accepting

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers["Content-Length"]))
                status = 204 if accepting.is_set() else 503
                answers.append((self.headers["webhook-id"], status))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_callback_pending_at_kill_9_is_delivered_once_after_the_restart(tmp_path, tiny_model_dir,
                                                                            database_url):
    receiver = _FlakyReceiver()
    secret = "s" * 40
    env = {"RECURSUM_API_KEYS": f"alice:{secret}:summarize",
           "RECURSUM_CALLBACK_HOSTS": f"127.0.0.1:{receiver.server.server_port}",
           "RECURSUM_CALLBACK_PRIVATE": "1"}
    auth = {"Authorization": f"Bearer {secret}"}
    first = Server(tmp_path / "home", tiny_model_dir, database_url, env)
    job_id = httpx.post(f"{first.url}/v1/summaries", headers=auth, json={
        "text": "Alice followed the White Rabbit. She fell down a hole.", "callback_url": receiver.url,
        "options": {"chunk_tokens": 40, "summary_tokens": 8}}).json()["id"]
    deadline = time.time() + 120
    while not receiver.answers:  # the job ended and its first delivery was turned away
        assert time.time() < deadline, "no callback was attempted"
        time.sleep(0.02)
    first.kill()
    receiver.accepting.set()

    second = Server(tmp_path / "home", tiny_model_dir, database_url, env)
    try:
        deadline = time.time() + 60
        while not any(status == 204 for _, status in receiver.answers):
            assert time.time() < deadline, "the pending callback was not delivered after the restart"
            time.sleep(0.1)
        time.sleep(3)  # time for a duplicate to show up, were there one
        delivered = [message for message, status in receiver.answers if status == 204]
        assert len(delivered) == 1
        assert {message for message, _ in receiver.answers} == set(delivered)  # one message, retried
        job = httpx.get(f"{second.url}/v1/summaries/{job_id}", headers=auth).json()
        assert job["callbacks"][-1]["outcome"] == "delivered"
    finally:
        second.stop()
        receiver.server.shutdown()
