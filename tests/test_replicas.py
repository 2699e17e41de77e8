"""Two `recursum serve` replicas on one PostgreSQL database: shared jobs, take-over after kill -9, and one
served adapter bundle."""

import signal
import time

import httpx
import pytest
import sqlalchemy as sa
from bundles import make_bundle
from postgres_cluster import new_database
from test_server_process import Server, _metric

from recursum.service.store.repository import Store
from recursum.service.store.tables import JobRow

pytestmark = pytest.mark.integration  # a PostgreSQL cluster and `recursum serve` processes

STORY = "\n\n".join(f"Part {i}. The Rabbit {i} ran past Alice and the Queen shouted at the Hatter."
                    for i in range(40))
OPTIONS = {"chunk_tokens": 40, "summary_tokens": 48, "batch_size": 1}


@pytest.fixture
def postgres_url(postgres_server) -> str:
    return new_database(postgres_server)


def _replica(tmp_path, tiny_model_dir, url: str, name: str) -> Server:
    return Server(tmp_path / name, tiny_model_dir, url,
                  env={"RECURSUM_REPLICA_ID": name, "RECURSUM_LEASE_SECONDS": "3",
                       "RECURSUM_MAX_ACTIVE_JOBS": "2", "RECURSUM_MAX_JOBS_PER_KEY": "16"})


def _lease_owners(store: Store, url: str) -> dict[str, str | None]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as connection:
        owners = dict(connection.execute(sa.select(JobRow.id, JobRow.lease_owner)).all())
    engine.dispose()
    return owners


def _wait_all_done(server: Server, job_ids: list[str], timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        statuses = {httpx.get(f"{server.url}/v1/summaries/{j}").json()["status"] for j in job_ids}
        if statuses == {"done"}:
            return
        assert statuses <= {"queued", "running", "done"}, statuses
        time.sleep(0.3)
    raise AssertionError("jobs did not finish")


def test_two_replicas_share_the_queue_and_take_over_a_killed_replicas_jobs(tmp_path, tiny_model_dir,
                                                                           postgres_url):
    first = _replica(tmp_path, tiny_model_dir, postgres_url, "a")
    second = _replica(tmp_path, tiny_model_dir, postgres_url, "b")
    store = Store(postgres_url)
    try:
        job_ids = [
            httpx.post(f"{server.url}/v1/summaries",
                       json={"text": STORY.replace("Alice", f"Alice {n}"), "options": OPTIONS}).json()["id"]
            for n, server in enumerate([first, second] * 3)
        ]
        deadline = time.time() + 120
        while not any(owner == "a" and store.nodes.job_nodes(job) for job, owner in
                      _lease_owners(store, postgres_url).items()):
            assert time.time() < deadline, "replica a never started a job"
            time.sleep(0.1)
        first.kill()
        held_by_a = [job for job, owner in _lease_owners(store, postgres_url).items()
                     if owner == "a" and store.jobs.get_job(job).status != "done"]
        assert held_by_a, "replica a finished everything before it was killed"
        reusable = sum(len(store.nodes.job_nodes(job)) for job in held_by_a)

        _wait_all_done(second, job_ids)
        owners = _lease_owners(store, postgres_url)
        assert all(owners[job] == "b" for job in held_by_a)
        # The events and reads of a job work on the replica that did not run it.
        assert httpx.get(f"{second.url}/v1/summaries/{job_ids[0]}/events").text.rstrip().endswith("}")
        metrics = httpx.get(f"{second.url}/metrics").text
        assert _metric(metrics, "recursum_node_cache_hits_total") >= reusable
        # No node is generated twice: what b generated is at most what nobody had committed before.
        generated_by_b = _metric(metrics, "recursum_node_cache_misses_total")
        assert generated_by_b <= store.counts()["generations"] - reusable
        for job in job_ids:
            record = store.jobs.get_job(job)
            assert record.root is not None
            assert store.nodes.get_job_node(job, record.root) is not None
    finally:
        second.stop()
        first.stop()
        store.close()


def _serving(server: Server) -> str:
    return httpx.get(f"{server.url}/v1/admin/adapters").json()["serving_here"]


def _wait_serving(servers: list[Server], version: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while {_serving(server) for server in servers} != {version}:
        assert time.time() < deadline, f"replicas serve {[_serving(s) for s in servers]}, not {version}"
        time.sleep(0.2)


def test_replicas_converge_on_the_bundle_a_sighup_or_a_rollback_activates(tmp_path, tiny_model_dir,
                                                                           postgres_url):
    one = make_bundle(tiny_model_dir, tmp_path / "bundles" / "one", {"chunk": 1})
    two = make_bundle(tiny_model_dir, tmp_path / "bundles" / "two", {"chunk": 2})
    current = tmp_path / "bundles" / "current"
    current.symlink_to(one)
    env = {"RECURSUM_ADAPTERS": str(current)}
    first = Server(tmp_path / "a", tiny_model_dir, postgres_url, env=env | {"RECURSUM_REPLICA_ID": "a"})
    second = Server(tmp_path / "b", tiny_model_dir, postgres_url, env=env | {"RECURSUM_REPLICA_ID": "b"})
    try:
        served_one = _serving(first)
        assert _serving(second) == served_one != "none"
        current.unlink()
        current.symlink_to(two)
        first.process.send_signal(signal.SIGHUP)  # one replica is told; the other follows the store
        deadline = time.time() + 30
        while (adapters := httpx.get(f"{first.url}/v1/admin/adapters").json())["served"] is None or \
                adapters["served"]["activated_by"] != "SIGHUP":
            assert time.time() < deadline, "SIGHUP activated nothing"
            time.sleep(0.2)
        assert adapters["served"]["directory"] == str(two), "the link is resolved when it is read"
        served_two = adapters["served"]["version"]
        _wait_serving([first, second], served_two)
        job = httpx.post(f"{second.url}/v1/summaries", json={"text": STORY, "options": OPTIONS}).json()["id"]
        _wait_all_done(second, [job])
        assert httpx.get(f"{second.url}/v1/summaries/{job}").json()["bundle"] == served_two
        rolled = httpx.post(f"{second.url}/v1/admin/adapters/rollback").json()
        assert rolled["served"]["version"] == served_one and rolled["previous"]["version"] == served_two
        _wait_serving([first, second], served_one)
    finally:
        second.stop()
        first.stop()
