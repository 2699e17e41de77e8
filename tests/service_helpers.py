"""Shared by the route tests that run the app on the fake engine: waiting for a job, and a job that stays
unfinished because another replica holds it."""

import time

from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store


def wait_finished(client, job_id: str, headers: dict[str, str], timeout: float = 30.0) -> dict:
    """The job's state once it is no longer queued or running."""
    deadline = time.time() + timeout
    while (job := client.get(f"/v1/summaries/{job_id}", headers=headers).json())["status"] in ("queued",
                                                                                                "running"):
        assert time.time() < deadline, "job did not finish"
        time.sleep(0.05)
    return job


def held_job(store: Store, job_id: str = "held", work_tokens: int = 0) -> str:
    """A queued job of alice's that another replica holds, so it stays unfinished while a test runs."""
    document = make_document("Alice followed the White Rabbit.")
    store.jobs.put_document(document)
    store.jobs.create_job(JobRecord(id=job_id, owner="alice", document_id=document.id, title="",
                                    config=TreeConfig(), created=time.time(), work_tokens=work_tokens))
    assert store.jobs.claim_jobs("other-replica", 1, lease_seconds=600)
    return job_id
