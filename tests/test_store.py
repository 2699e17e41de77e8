"""The service store: schema by migration, jobs and their nodes surviving restarts, a shared node cache.

Every behaviour runs on a SQLite file and, where the server binaries and psycopg are installed, on a
throwaway PostgreSQL cluster too.
"""

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from postgres_cluster import new_database

from recursum.schemas.jobs import CallbackAttempt, HeightProgress
from recursum.schemas.tree import EvidenceLink, Node, Sentence, Span
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.results import GenerationResult
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.store.database import create_database_engine, default_database_url, migrate
from recursum.service.store.evaluations import EvaluationLease, EvaluationPair
from recursum.service.store.jobs import LeaseLost
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store
from recursum.service.store.tables import Base

TABLES = {"documents", "jobs", "job_nodes", "job_generations", "generations", "callback_attempts",
          "callback_deliveries",
          "reports", "evaluation_tasks", "evaluation_leases", "comparisons", "adapter_activations"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'recursum.db'}"
    return new_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


def make_job(job_id: str, created: float, owner: str = "alice", status: str = "queued") -> JobRecord:
    return JobRecord(
        id=job_id, owner=owner, document_id=DOCUMENT.id, title="Alice", status=status, created=created,
        config=TreeConfig(chunk_tokens=300, context="preceding-text", temperature=0.7),
    )


def make_node(node_id: str, height: int, index: int) -> Node:
    sentence = Sentence(
        text="Alice follows the Rabbit.", support=0.8125, source_support=0.5, unsupported=False,
        links=(EvidenceLink(target="source", sentence=0, score=0.8125),), source_spans=(Span(0, 25),),
    )
    return Node(
        id=node_id, key=f"key-{node_id}", height=height, index=index, role="merge" if height else "chunk",
        adapter=None, span=Span(0, 40), children=("a", "b") if height else (), summary=sentence.text,
        sentences=(sentence,), source_sentences=(Span(0, 25),), prompt_tokens=120, generated_tokens=9,
    )


def make_generation(key: str) -> GenerationResult:
    return GenerationResult(key=key, text="Alice follows the Rabbit.", prompt_tokens=120, generated_tokens=9,
                            truncated=False)


DOCUMENT = make_document("Alice was beginning to get very tired.\n", title="Alice")


@pytest.fixture
def stored_document(store: Store) -> None:
    store.jobs.put_document(DOCUMENT)


def run_in_threads(count: int, work) -> None:
    """Start `count` threads together and re-raise the first error any of them hit."""
    barrier, errors = threading.Barrier(count), []

    def run(number: int) -> None:
        barrier.wait()
        try:
            work(number)
        except Exception as error:  # surfaced below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# Schema and connection


def test_migration_creates_every_table_and_running_it_again_changes_nothing(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)
    engine = create_database_engine(database_url)
    assert set(sa.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    engine.dispose()


def test_migrations_build_exactly_the_schema_the_models_declare(database_url: str) -> None:
    migrate(database_url)
    engine = create_database_engine(database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def test_sqlite_database_is_in_wal_mode(tmp_path: Path) -> None:
    Store(f"sqlite:///{tmp_path / 'recursum.db'}").close()
    with sqlite3.connect(tmp_path / "recursum.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_connections_enforce_foreign_keys_and_wait_when_busy(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'recursum.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


def test_default_database_is_a_file_in_recursum_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECURSUM_HOME", str(tmp_path / "home"))
    Store(default_database_url()).close()
    assert (tmp_path / "home" / "recursum.db").is_file()


def test_unsupported_database_url_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        create_database_engine("mysql://localhost/recursum")


# Documents and jobs


def test_document_round_trips_and_putting_it_again_is_harmless(store: Store) -> None:
    store.jobs.put_document(DOCUMENT)
    store.jobs.put_document(DOCUMENT)
    assert store.jobs.get_document(DOCUMENT.id) == DOCUMENT
    assert store.jobs.get_document("missing") is None
    assert store.counts()["documents"] == 1


def test_job_round_trips_with_its_config_and_progress(store: Store, stored_document: None) -> None:
    job = make_job("job-1", created=100.0)
    job.progress = [HeightProgress(height=0, done=3, total=4)]
    job.callback_url = "https://example.org/hook"
    store.jobs.create_job(job)
    assert store.jobs.get_job("job-1") == job
    assert store.jobs.get_job("missing") is None


def test_a_job_needs_a_stored_document(store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        store.jobs.create_job(make_job("job-1", created=100.0))


def test_list_jobs_is_newest_first_and_filters_by_owner(store: Store, stored_document: None) -> None:
    for number, owner in enumerate(["alice", "bob", "alice"]):
        store.jobs.create_job(make_job(f"job-{number}", created=100.0 + number, owner=owner))
    assert [job.id for job in store.jobs.list_jobs()] == ["job-2", "job-1", "job-0"]
    assert [job.id for job in store.jobs.list_jobs(owner="alice")] == ["job-2", "job-0"]
    assert [job.id for job in store.jobs.list_jobs(limit=1)] == ["job-2"]


def test_claims_take_the_queued_and_running_jobs_oldest_first(
    store: Store, stored_document: None
) -> None:
    statuses = ["running", "done", "queued", "failed", "queued", "cancelled"]
    for number, status in enumerate(statuses):
        store.jobs.create_job(make_job(f"job-{number}", created=200.0 - number, status=status))
    claimed = store.jobs.claim_jobs("a", limit=10, lease_seconds=60)
    assert [job.id for job in claimed] == ["job-4", "job-2", "job-0"]
    assert store.jobs.count_jobs(["queued", "running"]) == 3
    assert store.jobs.count_jobs(["done"]) == 1
    assert store.jobs.count_jobs([]) == 0


def test_update_job_sets_fields_and_returns_the_new_record(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    progress = [HeightProgress(height=0, done=4, total=4), HeightProgress(height=1, done=0, total=1)]
    updated = store.jobs.update_job("job-1", status="running", started=101.5, progress=progress)
    assert updated == store.jobs.get_job("job-1")
    assert (updated.status, updated.started, updated.progress) == ("running", 101.5, progress)
    assert updated.config == make_job("job-1", created=100.0).config


def test_update_job_of_an_unknown_id_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        store.jobs.update_job("missing", status="running")


def test_update_job_refuses_fields_a_job_does_not_have(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    with pytest.raises(TypeError, match="colour"):
        store.jobs.update_job("job-1", colour="blue")
    with pytest.raises(TypeError):
        store.jobs.update_job("job-1", id="job-2")


def test_update_job_to_an_invalid_record_changes_nothing(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    with pytest.raises(msgspec.ValidationError):
        store.jobs.update_job("job-1", status="exploded", error="boom")
    assert store.jobs.get_job("job-1") == make_job("job-1", created=100.0)


# Nodes of a job


def test_job_nodes_are_committed_one_by_one_and_survive_a_restart(database_url: str) -> None:
    writer, reader = Store(database_url), Store(database_url)  # the worker, and an API replica
    writer.jobs.put_document(DOCUMENT)
    writer.jobs.create_job(make_job("job-1", created=100.0))
    nodes = [make_node("leaf-1", 0, 1), make_node("leaf-0", 0, 0), make_node("root", 1, 0)]
    for count, node in enumerate(nodes, start=1):
        writer.nodes.put_job_node("job-1", node)
        assert len(reader.nodes.job_nodes("job-1")) == count
    writer.close()
    reader.close()

    restarted = Store(database_url)
    assert restarted.nodes.job_nodes("job-1") == [nodes[1], nodes[0], nodes[2]]
    assert restarted.nodes.get_job_node("job-1", "root") == nodes[2]
    assert restarted.nodes.get_job_node("job-1", "missing") is None
    restarted.close()


def test_putting_a_job_node_again_is_harmless(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    store.nodes.put_job_node("job-1", make_node("leaf-0", 0, 0))
    store.nodes.put_job_node("job-1", make_node("leaf-0", 0, 0))
    assert store.nodes.job_nodes("job-1") == [make_node("leaf-0", 0, 0)]


def test_a_job_node_needs_an_existing_job(store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        store.nodes.put_job_node("missing", make_node("leaf-0", 0, 0))


def test_writers_in_several_threads_wait_for_each_other(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))

    def finish_a_node(number: int) -> None:
        store.nodes.put_job_node("job-1", make_node(f"leaf-{number}", 0, number))
        store.jobs.update_job("job-1", progress=[HeightProgress(height=0, done=number, total=8)])

    run_in_threads(8, finish_a_node)
    assert len(store.nodes.job_nodes("job-1")) == 8


# The generation cache


def test_generation_cache_is_shared_across_jobs_and_put_is_idempotent(store: Store) -> None:
    assert store.nodes.get("key-1") is None
    store.nodes.put(make_generation("key-1"))
    store.nodes.put(make_generation("key-1"))
    assert store.nodes.get("key-1") == make_generation("key-1")
    assert store.counts()["generations"] == 1


def test_concurrent_puts_of_one_generation_do_not_raise(database_url: str) -> None:
    stores = [Store(database_url), Store(database_url)]  # two workers, or two replicas
    run_in_threads(8, lambda number: stores[number % 2].nodes.put(make_generation("key-1")))
    assert stores[0].nodes.get("key-1") == make_generation("key-1")
    for store in stores:
        store.close()


# Deleting and callbacks


def _finished_job_with_callback(store: Store, job_id: str) -> None:
    job = make_job(job_id, created=100.0)
    job.callback_url = "https://example.org/hook"
    store.jobs.create_job(job)
    store.jobs.update_job(job_id, status="done", finished=105.0)


def test_deleting_a_job_removes_its_nodes_and_callbacks_but_keeps_shared_rows(
    store: Store, stored_document: None
) -> None:
    for job_id in ("job-1", "job-2"):
        _finished_job_with_callback(store, job_id)
        store.nodes.put_job_node(job_id, make_node("leaf-0", 0, 0))
    for delivery in store.callbacks.claim_due("replica-a", 2, lease_seconds=30):
        rejected = CallbackAttempt(attempt=1, at=110.0, outcome="rejected")
        store.callbacks.record_attempt(delivery, "replica-a", rejected, retry_at=120.0)
    store.nodes.put(make_generation("key-leaf-0"))

    assert store.jobs.delete_job("job-1") is True
    assert store.jobs.delete_job("job-1") is False
    assert store.jobs.get_job("job-1") is None
    nonempty = {table: rows for table, rows in store.counts().items() if rows}
    assert nonempty == {"documents": 1, "jobs": 1, "job_nodes": 1, "generations": 1, "callback_attempts": 1,
                        "callback_deliveries": 1}
    assert store.nodes.job_nodes("job-2") == [make_node("leaf-0", 0, 0)]


def test_a_callback_is_in_the_outbox_from_submit_and_due_once_its_job_ends(
    store: Store, stored_document: None
) -> None:
    job = make_job("job-1", created=100.0)
    job.callback_url = "https://example.org/hook"
    store.jobs.create_job(job)
    assert store.callbacks.claim_due("replica-a", 4, lease_seconds=30) == []  # still queued
    store.jobs.update_job("job-1", status="done", finished=105.0)
    [delivery] = store.callbacks.claim_due("replica-a", 4, lease_seconds=30)
    assert delivery.job_id == "job-1" and delivery.id.startswith("msg_") and delivery.attempts == 0
    assert store.callbacks.claim_due("replica-b", 4, lease_seconds=30) == []  # leased to replica-a


def test_a_delivery_is_retried_until_delivered_and_its_attempts_listed_in_order(
    store: Store, stored_document: None
) -> None:
    _finished_job_with_callback(store, "job-1")
    [delivery] = store.callbacks.claim_due("replica-a", 1, lease_seconds=30)
    rejected = CallbackAttempt(attempt=1, at=110.0, outcome="unreachable")
    assert store.callbacks.record_attempt(delivery, "replica-a", rejected, retry_at=time.time() - 1)
    [retry] = store.callbacks.claim_due("replica-b", 1, lease_seconds=30)  # any replica may retry it
    delivered = CallbackAttempt(attempt=2, at=112.0, outcome="delivered")
    assert not store.callbacks.record_attempt(retry, "replica-a", delivered, None)  # not replica-a's now
    assert store.callbacks.record_attempt(retry, "replica-b", delivered, None)
    assert store.callbacks.attempts("job-1") == [rejected, delivered]
    assert store.callbacks.claim_due("replica-a", 1, lease_seconds=30) == []  # delivered: never again


def test_a_claimed_job_is_not_claimed_by_another_replica_until_its_lease_expires(
    store: Store, stored_document: None
) -> None:
    store.jobs.create_job(make_job("j1", created=1.0))
    store.jobs.create_job(make_job("j2", created=2.0))
    assert [job.id for job in store.jobs.claim_jobs("a", limit=1, lease_seconds=60)] == ["j1"]
    assert [job.id for job in store.jobs.claim_jobs("b", limit=5, lease_seconds=0.05)] == ["j2"]
    assert store.jobs.claim_jobs("c", limit=5, lease_seconds=60) == []
    time.sleep(0.1)
    assert [job.id for job in store.jobs.claim_jobs("c", limit=5, lease_seconds=60)] == ["j2"]


def test_a_replica_reclaims_its_own_jobs_after_a_restart(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("j1", created=1.0))
    store.jobs.claim_jobs("a", limit=1, lease_seconds=60)
    assert [job.id for job in store.jobs.claim_jobs("a", limit=1, lease_seconds=60)] == ["j1"]
    assert store.jobs.claim_jobs("a", limit=1, lease_seconds=60, exclude=["j1"]) == []


def test_renewing_reports_held_jobs_and_their_cancel_requests(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("j1", created=1.0))
    store.jobs.create_job(make_job("j2", created=2.0))
    store.jobs.claim_jobs("a", limit=2, lease_seconds=0.05)
    time.sleep(0.1)
    store.jobs.claim_jobs("b", limit=1, lease_seconds=60)  # takes over the expired j1
    store.jobs.update_job("j2", cancel_requested=True)
    assert store.jobs.renew_leases("a", ["j1", "j2"], lease_seconds=60) == {"j2": True}


def test_concurrent_claims_never_hand_out_a_job_twice(database_url: str) -> None:
    setup = Store(database_url)
    setup.jobs.put_document(DOCUMENT)
    for number in range(20):
        setup.jobs.create_job(make_job(f"j{number:02d}", created=float(number)))
    claimed: list[str] = []
    replicas = [Store(database_url) for _ in range(4)]  # one engine each, as separate processes have

    def claim(number: int) -> None:
        mine: list[str] = []
        while jobs := replicas[number].jobs.claim_jobs(f"replica-{number}", limit=2, lease_seconds=60,
                                                  exclude=mine):
            mine.extend(job.id for job in jobs)
        claimed.extend(mine)

    run_in_threads(4, claim)
    assert sorted(claimed) == [f"j{number:02d}" for number in range(20)]


def test_a_replica_that_lost_a_lease_cannot_overwrite_the_job(store: Store, stored_document: None) -> None:
    store.jobs.create_job(make_job("j1", created=1.0))
    store.jobs.claim_jobs("a", limit=1, lease_seconds=0.05)
    time.sleep(0.1)
    store.jobs.claim_jobs("b", limit=1, lease_seconds=60)
    with pytest.raises(LeaseLost):
        store.jobs.update_job("j1", holder="a", status="done")
    assert store.jobs.update_job("j1", holder="b", status="running").status == "running"


def test_deleting_a_job_deletes_its_document_and_generations_that_no_other_job_uses(
    store: Store, stored_document: None
) -> None:
    for job_id in ("job-1", "job-2"):
        store.jobs.create_job(make_job(job_id, created=100.0))
    mine, shared = (msgspec.structs.replace(make_node(node_id, 0, index), generations=(f"key-{node_id}",))
                    for index, node_id in enumerate(("mine", "shared")))
    for node in (mine, shared):
        store.nodes.put(make_generation(node.generations[0]))
    store.nodes.put_job_node("job-1", mine)
    store.nodes.put_job_node("job-1", shared)
    store.nodes.put_job_node("job-2", shared)

    store.jobs.delete_job("job-1")
    assert store.nodes.get("key-mine") is None  # only job-1 used it
    assert store.nodes.get("key-shared") is not None
    assert store.jobs.get_document(DOCUMENT.id) is not None  # job-2 still summarizes it
    store.jobs.delete_job("job-2")
    assert store.nodes.get("key-shared") is None
    assert store.jobs.get_document(DOCUMENT.id) is None


def test_leases_are_measured_by_the_database_clock_not_the_replicas(
    store: Store, stored_document: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    assert store.jobs.claim_jobs("replica-a", 1, lease_seconds=60)
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # replica-b's clock runs decades ahead
    assert store.jobs.claim_jobs("replica-b", 1, lease_seconds=60) == []


def test_processes_migrating_one_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'raced.db'}"
    code = f"from recursum.service.store.database import migrate; migrate({url!r})"
    racers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(6)]
    failures = [racer.stderr.read().decode()[-300:] for racer in racers if racer.wait() != 0]
    assert failures == []


def test_concurrent_submissions_never_exceed_a_keys_job_limit(database_url: str) -> None:
    from recursum.service.store.jobs import OverLimit, SubmitLimits

    limits = SubmitLimits(max_queue=100, max_jobs_per_key=4, max_key_tokens=10**9)
    stores = [Store(database_url) for _ in range(4)]  # as many connections as racing replicas
    accepted: list[str] = []

    def submit(index: int) -> None:
        job = make_job(f"job-{index}", created=100.0 + index)
        try:
            stores[index % len(stores)].jobs.submit(DOCUMENT, job, limits)
            accepted.append(job.id)
        except OverLimit:
            pass

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 4
    assert stores[0].jobs.owner_load("alice") == (4, 0)
    for store in stores:
        store.close()


def test_the_evaluation_backlog_counts_unanswered_tasks_no_one_holds_and_expired_leases(
    store: Store, stored_document: None
) -> None:
    store.jobs.create_job(make_job("job-1", created=100.0))
    pairs = [EvaluationPair(id=f"pair-{i}", job_id="job-1", node_id="n", kind="summary", height=0,
                            first="summary", second="candidate:0", created=100.0) for i in range(2)]
    assert store.evaluations.backlog(now=200.0) == (0, 0)
    store.evaluations.lease_pair(pairs[0], EvaluationLease(id="held", task_id="pair-0", evaluator="eve",
                                                           leased=200.0, expires=300.0))
    store.evaluations.lease_pair(pairs[1], EvaluationLease(id="lapsed", task_id="pair-1", evaluator="eve",
                                                           leased=100.0, expires=150.0))
    assert store.evaluations.backlog(now=200.0) == (1, 1)  # pair-1's lease ran out unanswered
    assert store.evaluations.backlog(now=400.0) == (2, 2)
