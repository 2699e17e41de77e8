"""The model worker: one thread runs jobs height by height, committing every node as it finishes.

The store is the queue: queued and running jobs are picked oldest first, so after a crash the
restarted worker resumes them, and the store's generation cache hands back every completed node.
"""

import logging
import threading
import time
from collections.abc import Callable

import msgspec

from clients.schemas import HeightDone, HeightProgress, HeightStarted, JobFinished, NodeSummary
from service.api.broker import EventBroker
from service.api.callbacks import CallbackSender
from service.api.metrics import EngineMetrics
from service.api.summaries.service import job_read
from service.engine.events import NodeDone, ProgressEvent
from service.engine.facade import Engine
from service.engine.recursion import Cancelled, RunStats
from service.store.records import JobRecord
from service.store.repository import Store

log = logging.getLogger("recursum.worker")


class JobWorker:
    """Loads the model on its own thread (so /healthz answers meanwhile), then runs jobs."""

    def __init__(self, store: Store, load_engine: Callable[[], Engine], broker: EventBroker,
                 metrics: EngineMetrics, callbacks: CallbackSender) -> None:
        self.store = store
        self.callbacks = callbacks
        self.engine: Engine | None = None
        self.load_error: str | None = None
        self._load_engine = load_engine
        self.broker = broker
        self.metrics = metrics
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="recursum-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def notify(self) -> None:
        """A job was queued."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """Generation of `job_id` stops at the next decoding step."""
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
        while not self._stopping.is_set():
            pending = self.store.unfinished_jobs()
            self.metrics.queue_depth.set(len(pending))
            if not pending:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            self._run(pending[0])

    def _run(self, job: JobRecord) -> None:
        if job.cancel_requested or job.id in self._cancelled:
            self._finish(job.id, status="cancelled")
            return
        started = time.time()
        job = self.store.update_job(job.id, status="running", started=job.started or started)
        document = self.store.get_document(job.document_id)
        progress: dict[int, HeightProgress] = {p.height: p for p in job.progress}
        first_node: list[float] = []

        def on_event(event: ProgressEvent) -> None:
            match event:
                case HeightStarted(height=height, nodes=nodes):
                    progress[height] = HeightProgress(height=height, done=0, total=nodes)
                case NodeDone(node=node):
                    self.store.put_job_node(job.id, node)
                    progress[node.height].done += 1
                    if not first_node:
                        first_node.append(time.time())
                        self.metrics.time_to_first_node.observe(first_node[0] - started)
                    self.metrics.observe_node(node)
                case HeightDone():
                    pass
            self.store.update_job(job.id, progress=[progress[h] for h in sorted(progress)])
            self.broker.publish(job.id, _wire(event))

        stats = RunStats()
        try:
            tree = self.engine.summarize(document, job.config, self.store, on_event,
                                         should_stop=lambda: job.id in self._cancelled, stats=stats)
        except Cancelled:
            self._finish(job.id, status="cancelled")
        except Exception as error:  # a failed job must not take the worker down
            log.exception("job %s failed", job.id)
            self._finish(job.id, status="failed", error=f"{type(error).__name__}: {error}")
        else:
            self._finish(job.id, status="done", root=tree.root)
        finally:
            self.metrics.observe_run(stats)
            self.metrics.job_duration.observe(time.time() - started)

    def _finish(self, job_id: str, **changes) -> None:
        self._cancelled.discard(job_id)
        record = self.store.update_job(job_id, finished=time.time(), **changes)
        self.metrics.jobs.labels(status=record.status).inc()
        finished = JobFinished(job=job_read(self.store, record))
        self.broker.publish(job_id, finished)
        if record.callback_url:
            self.callbacks.send(job_id, record.callback_url, record.owner, msgspec.json.encode(finished))


def _wire(event: ProgressEvent):
    """Node events go out without the evidence payload; clients fetch the node when they want it."""
    if isinstance(event, NodeDone):
        node = event.node
        return NodeSummary(node_id=node.id, height=node.height, index=node.index, summary=node.summary)
    return event
