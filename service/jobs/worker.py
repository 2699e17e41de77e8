"""The model worker: one thread runs jobs node by node, committing every node as it finishes.

Jobs run together: one `Scheduler` forms every batch from the ready nodes of all active jobs, fair across
API keys and then across jobs, and refills a batch's free rows with whatever became ready meanwhile
(a merge whose children just finished, or a job that just arrived). Pending helper reports are
generated between batches, and a batch drains to let them in, as it does for an adapter bundle switch.

The store is the queue: queued and running jobs are picked oldest first, so after a crash the
restarted worker resumes them, and the store's generation cache hands back every completed node.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from recursum.schemas.events import HeightDone, HeightStarted, JobFinished
from recursum.schemas.jobs import HeightProgress
from recursum.service.engine.errors import public_message
from recursum.service.engine.interface import Engine, TreeRun
from recursum.service.engine.pipeline.events import NodeDone, ProgressEvent, to_wire
from recursum.service.engine.pipeline.results import BatchRecord, RunStats
from recursum.service.engine.pipeline.scheduler import Scheduler
from recursum.service.jobs.broker import EventBroker
from recursum.service.jobs.bundles import BundleSwitch
from recursum.service.jobs.callbacks import CallbackDeliverer
from recursum.service.jobs.metrics import EngineMetrics
from recursum.service.jobs.reports import finish_pending_reports
from recursum.service.jobs.throughput import Throughput
from recursum.service.jobs.views import job_read, served_event
from recursum.service.store.database import is_transient
from recursum.service.store.jobs import LeaseLost
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.worker")


class JobWorker:
    """Loads the model on its own thread (so /healthz answers meanwhile), then runs jobs."""

    def __init__(self, store: Store, load_engine: Callable[[], Engine], broker: EventBroker,
                 metrics: EngineMetrics, callbacks: CallbackDeliverer, max_active: int = 8,
                 replica_id: str = "local", lease_seconds: float = 30.0, max_attempts: int = 3) -> None:
        self.store = store
        self.max_active = max_active
        self.max_attempts = max_attempts
        self.replica_id = replica_id
        self.lease_seconds = lease_seconds
        self._running: frozenset[str] = frozenset()  # ids of active jobs, read by the heartbeat
        self._lost: set[str] = set()  # leases another replica took over: drop without finishing
        self.callbacks = callbacks
        self.engine: Engine | None = None
        self.load_error: str | None = None
        self._load_engine = load_engine
        self.broker = broker
        self.metrics = metrics
        self.throughput = Throughput()  # what estimates divide by
        self.scheduler: Scheduler | None = None
        self.bundles = BundleSwitch(store, self._on_switch)
        self._wake = threading.Event()
        self._reports_checked = 0.0  # when the store was last asked for pending reports, mid-batch
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="recursum-worker", daemon=True)
        self._heartbeat = threading.Thread(target=self._renew, name="recursum-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._heartbeat.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def is_running(self, job_id: str) -> bool:
        """Whether this replica is generating `job_id` (its live events come from this process)."""
        return job_id in self._running

    def _renew(self) -> None:
        """Keeps this replica's leases alive and learns of cancellations made on other replicas.

        If renewal keeps failing for a whole lease period, the leases may already belong to another
        replica: every running job is treated as lost rather than generated twice.
        """
        last_renewal = time.time()
        while not self._stopping.wait(self.lease_seconds / 3):
            running = self._running
            try:
                held = self.store.jobs.renew_leases(self.replica_id, running, self.lease_seconds)
            except Exception:  # a database hiccup must not end the heartbeat
                log.exception("lease renewal failed")
                if time.time() - last_renewal >= self.lease_seconds:
                    self._lost.update(self._running)
                continue
            last_renewal = time.time()
            still_running = self._running  # ids the worker dropped meanwhile are not re-added
            self._lost.update((running - held.keys()) & still_running)
            self._cancelled.update(job for job, cancel in held.items() if cancel and job in still_running)

    def notify(self) -> None:
        """A job was queued."""
        self._wake.set()

    def activate(self, directory: str | None, by: str) -> Future:
        """Serve the adapter bundle at `directory` once the running batch drains (see `BundleSwitch`)."""
        answer = self.bundles.request(directory, by)
        self._wake.set()
        return answer

    def _on_switch(self, outcome: str) -> None:
        self.metrics.adapter_switches.labels(outcome=outcome).inc()
        if outcome in ("activated", "followed"):
            self.metrics.observe_model(self.engine)

    def cancel(self, job_id: str) -> None:
        """Generation of `job_id` stops at the next decoding step if this replica runs it; the store's
        cancel flag reaches any other replica at its next lease renewal."""
        if job_id in self._running:
            self._cancelled.add(job_id)
        self._wake.set()

    def _loop(self) -> None:
        try:
            self.engine = self._load_engine()
        except Exception as error:  # reported by /readyz; the process stays up for diagnosis
            log.exception("model failed to load")
            self.load_error = f"{type(error).__name__}: {error}"
            return
        self.metrics.observe_model(self.engine)
        self.engine.observe_batches(self._on_batch)
        try:
            self.throughput.seed(self.engine.describe(probe_tokens=16))
        except Exception:  # estimates then wait for the first batch
            log.exception("the throughput probe failed")
        self.scheduler = Scheduler(self.engine.generate)
        active: dict[str, _ActiveJob] = {}
        while not self._stopping.is_set():
            try:
                self.bundles.apply(self.engine, {running.bundle for running in active.values()})
                self._admit(active)
                self._observe_queue(active)
                reported = self._finish_reports()
                failures = self._batch(active) if active else None
                self._settle(active, failures or {})  # a job served wholly from the cache ends here
                if failures is None and not reported:
                    self._wake.wait(timeout=1.0)
                    self._wake.clear()
            except Exception:  # e.g. the database briefly unreachable: retry rather than die
                log.exception("worker iteration failed; retrying")
                self._stopping.wait(1.0)
            self._running = frozenset(active)
        # A graceful stop (a rolling restart) is not an attempt: any replica may resume these at once.
        self._release(list(active))
        self.bundles.abandon()

    def _finish_reports(self) -> list:
        """Pending helper reports (critique, qa), generated in batches between summary batches."""
        reported = finish_pending_reports(self.store, self.engine, self.replica_id)
        for report in reported:
            self.metrics.report_latency.observe(time.time() - report.created)
        return reported

    def _on_batch(self, batch: BatchRecord) -> None:
        self.metrics.observe_batch(batch)
        self.throughput.observe(batch)

    def _observe_queue(self, active: dict[str, "_ActiveJob"]) -> None:
        waiting, running = (self.store.jobs.count_jobs((state,)) for state in ("queued", "running"))
        self.metrics.queue_depth.set(waiting + running)
        self.metrics.jobs_by_state.labels(state="queued").set(waiting)
        self.metrics.jobs_by_state.labels(state="running").set(running)
        self.metrics.leased_jobs.set(len(active))
        self.metrics.pending_reports.set(self.store.reports.count_pending())
        tasks_waiting, leases_expired = self.store.evaluations.backlog(time.time())
        self.metrics.evaluation_tasks_waiting.set(tasks_waiting)
        self.metrics.evaluation_leases_expired.set(leases_expired)

    def _release(self, job_ids: list[str]) -> None:
        try:
            self.store.jobs.release_jobs(self.replica_id, job_ids)
        except Exception:  # the leases expire on their own
            log.exception("releasing jobs %s failed", job_ids)

    def _admit(self, active: dict[str, "_ActiveJob"]) -> None:
        """Lease waiting jobs (oldest first) up to `max_active`; their heights join the next round."""
        claimed = self.store.jobs.claim_jobs(self.replica_id, self.max_active - len(active),
                                             self.lease_seconds, exclude=active)
        # Under lease from now on: the heartbeat must renew them while they start.
        self._running = frozenset(active) | {job.id for job in claimed}
        for job in claimed:
            if job.cancel_requested or job.id in self._cancelled:
                self._finish(job.id, status="cancelled")
                continue
            if job.attempts > self.max_attempts:
                self.metrics.failures.labels(reason="poison").inc()
                self._finish(job.id, status="failed", error=(
                    f"gave up after {self.max_attempts} attempts: each time, the replica running this job "
                    "stopped before it finished (a crash, e.g. out of memory); resubmit it smaller"))
                continue
            try:
                active[job.id] = self._start(job)
                self.scheduler.add(job.id, job.owner, active[job.id].build)
            except Exception as error:  # a bad job must not take the worker down
                log.exception("job %s failed to start", job.id)
                if is_transient(error):
                    self._release([job.id])
                else:
                    self.metrics.failures.labels(reason="refused").inc()
                    self._finish(job.id, status="failed", error=public_message(error))

    def _start(self, job: JobRecord) -> "_ActiveJob":
        self.engine.check(job.config)  # refused alone here rather than failing a shared batch later
        if job.started is None:
            self.metrics.queue_wait.observe(time.time() - job.created)
        # A job keeps the adapter set it first started on, across a swap and a restart.
        bundle = self.bundles.resume(self.engine, job.bundle) if job.bundle else self.engine.bundle.version
        job = self.store.jobs.update_job(job.id, holder=self.replica_id, status="running",
                                         started=job.started or time.time(), bundle=bundle)
        running = _ActiveJob(job=job, bundle=bundle, started=time.time(),
                             progress={p.height: p for p in job.progress})
        running.build = self.engine.start(self.store.jobs.get_document(job.document_id), job.config,
                                          self.store.nodes, lambda event: self._on_event(running, event),
                                          running.stats, bundle=bundle)
        return running

    def _on_event(self, running: "_ActiveJob", event: ProgressEvent) -> None:
        job_id = running.job.id
        match event:
            case HeightStarted(height=height, nodes=nodes):
                running.progress[height] = HeightProgress(height=height, done=0, total=nodes)
            case NodeDone(node=node):
                self.store.nodes.put_job_node(job_id, node)
                running.progress[node.height].done += 1
                if not running.first_node_seen:
                    running.first_node_seen = True
                    self.metrics.time_to_first_node.observe(time.time() - running.started)
                self.metrics.observe_node(node)
            case HeightDone():
                pass
        progress = [running.progress[h] for h in sorted(running.progress)]
        try:
            self.store.jobs.update_job(job_id, holder=self.replica_id, progress=progress)
        except LeaseLost:  # another replica took the job over: stop generating it here
            self._lost.add(job_id)
            return
        self.broker.publish(job_id, served_event(to_wire(event), running.job, progress))

    def _batch(self, active: dict[str, "_ActiveJob"]) -> dict[str, Exception] | None:
        """One continuous batch over the active jobs; None if none of them has a node ready."""
        def wanted(key: str) -> bool:  # asked live: a node the screen emptied adds a resample mid-batch
            if self._stopping.is_set():
                return False
            stopped = (self._cancelled | self._lost) & active.keys()
            return not stopped or any(key in running.build.pending_keys()
                                      for job_id, running in active.items() if job_id not in stopped)

        def between_rows() -> bool:
            """Before rows are refilled: admit jobs that just arrived, end jobs that finished, and let
            the batch drain when the worker stops or helper reports are waiting."""
            if self._stopping.is_set():
                return False
            if self._wake.is_set():
                self._wake.clear()
                self._admit(active)
            self._settle(active, {})
            self._running = frozenset(active)
            return not self._reports_waiting() and not self.bundles.waiting(self.engine)

        try:
            return self.scheduler.run_batch(wanted, between_rows)
        except Exception as error:  # outside any batch (e.g. the model failing): every job of the batch
            log.exception("generation batch failed")
            return dict.fromkeys(active, error)

    def _reports_waiting(self) -> bool:
        """Whether helper reports wait (asked of the store at most every two seconds mid-batch)."""
        if time.monotonic() - self._reports_checked < 2.0:
            return False
        self._reports_checked = time.monotonic()
        return self.store.reports.count_pending() > 0

    def _settle(self, active: dict[str, "_ActiveJob"], failures: dict[str, Exception]) -> None:
        """Fail the jobs a batch failure hit, then drop lost jobs and end cancelled and finished ones.

        A failure fails only the jobs whose batches or nodes it hit; a database error releases them to be
        claimed again; a graceful stop leaves every job to be resumed.
        """
        if self._stopping.is_set():
            return
        for job_id, error in failures.items():
            if job_id in active:
                self._stop(active, job_id, error)
        for job_id in list(active):
            running = active[job_id]
            if job_id in self._lost:
                log.warning("lease on job %s was taken over by another replica; dropping it", job_id)
                self.metrics.lease_takeovers.inc()
                self._lost.discard(job_id)
                self._drop(active, job_id)
            elif job_id in self._cancelled:
                self._end(self._drop(active, job_id), status="cancelled")
            elif running.build.done:
                self._end(self._drop(active, job_id), status="done", root=running.build.root.id)

    def _drop(self, active: dict[str, "_ActiveJob"], job_id: str) -> "_ActiveJob":
        self.scheduler.remove(job_id)
        return active.pop(job_id)

    def _stop(self, active: dict[str, "_ActiveJob"], job_id: str, error: Exception) -> None:
        """A job whose work raised: dropped if another replica holds it now, cancelled if asked, released
        if the store failed for a moment, else failed with a public reason."""
        running = self._drop(active, job_id)
        if job_id in self._lost:
            self._lost.discard(job_id)
        elif job_id in self._cancelled:
            self._end(running, status="cancelled")
        elif is_transient(error):
            log.warning("job %s hit a database error; released to be resumed: %s", job_id, error)
            self._release([job_id])
        else:
            log.error("job %s failed", job_id, exc_info=error)
            self.metrics.failures.labels(reason="generation").inc()
            self._end(running, status="failed", error=public_message(error))

    def _end(self, running: "_ActiveJob", **changes) -> None:
        self.metrics.job_duration.observe(time.time() - running.started)
        self._finish(running.job.id, **changes)

    def _finish(self, job_id: str, **changes) -> None:
        self._cancelled.discard(job_id)
        try:
            record = self.store.jobs.update_job(job_id, holder=self.replica_id, finished=time.time(),
                                                **changes)
        except (KeyError, LeaseLost):  # deleted meanwhile, or now another replica's to report
            return
        self.announce_end(record)

    def announce_end(self, record: JobRecord) -> None:
        """Count a job that ended, tell its SSE subscribers, and wake the callback outbox."""
        job_id = record.id
        self.metrics.jobs.labels(status=record.status).inc()
        finished = JobFinished(job=job_read(self.store, record))
        self.broker.publish(job_id, finished)
        if record.callback_url:
            self.callbacks.notify()


@dataclass
class _ActiveJob:
    """A job the worker is running: its tree build and the progress it reports."""

    job: JobRecord
    bundle: str  # the adapter set it runs on
    started: float
    progress: dict[int, HeightProgress]
    build: TreeRun | None = None
    stats: RunStats = field(default_factory=RunStats)
    first_node_seen: bool = False
