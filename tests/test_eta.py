"""A running job's ETA: its pace so far, times the nodes its estimate still counts."""

import time

from recursum.schemas.events import NodeSummary
from recursum.schemas.jobs import HeightProgress
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.jobs.views import eta_seconds, served_event
from recursum.service.store.records import JobRecord

NOW = 1_000.0


def _job(status: str = "running", started: float | None = NOW - 10, estimated: int = 6) -> JobRecord:
    return JobRecord(id="j", owner="alice", document_id="d", title="", config=TreeConfig(), status=status,
                     started=started, estimated_nodes=estimated)


def test_the_eta_is_the_pace_so_far_times_the_nodes_left():
    progress = [HeightProgress(height=0, done=2, total=4)]
    assert eta_seconds(_job(), progress, NOW) == 10 / 2 * (6 - 2)


def test_no_eta_before_the_first_node_after_the_end_or_past_the_estimate():
    assert eta_seconds(_job(), [HeightProgress(height=0, done=0, total=4)], NOW) is None
    assert eta_seconds(_job(status="done"), [HeightProgress(height=0, done=4, total=4)], NOW) is None
    assert eta_seconds(_job(estimated=3), [HeightProgress(height=0, done=4, total=4)], NOW) is None


def test_a_finished_node_streams_with_the_jobs_eta():
    event = NodeSummary(node_id="n", height=0, index=0, summary="Alice ran.")
    job = _job(started=time.time() - 10)
    served = served_event(event, job, [HeightProgress(height=0, done=2, total=4)])
    assert served.eta_seconds is not None and 15 < served.eta_seconds < 25
