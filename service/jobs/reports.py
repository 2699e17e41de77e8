"""The model worker's share of helper reports: pending critiques and qa answers, finished in batches."""

import logging

from recursum.schemas.reports import ReportRead
from recursum.service.engine.errors import public_message
from recursum.service.engine.interface import Engine
from recursum.service.jobs.views import report_task, reported_node
from recursum.service.store.repository import Store

log = logging.getLogger("recursum.reports")

PENDING_BATCH = 16  # pending reports the worker takes per pass (two generation batches of 8)
# Reports have no heartbeat: the lease outlasts one pass of helper generations on CPU; a dead replica's
# reports wait this long before another replica takes them.
REPORT_LEASE_SECONDS = 900.0


def finish_pending_reports(store: Store, engine: Engine, replica: str,
                           limit: int = PENDING_BATCH) -> list[ReportRead]:
    """Lease up to `limit` pending reports and finish them in one batched generation (the worker calls
    this between summary batches); returns the ones it took."""
    pending = store.reports.claim_pending_reports(replica, limit, REPORT_LEASE_SECONDS)
    tasks = []
    for report in pending:
        job = store.jobs.get_job(report.job_id)
        node = reported_node(store, report.job_id, report.node_id)
        if job is None or node is None:  # deleted meanwhile (its reports go with it)
            continue
        tasks.append(report_task(store, job, node, report))
    if not tasks:
        return pending
    try:
        bodies = engine.report(tasks, cache=store.nodes)
    except Exception as error:  # a failing batch fails its reports, never the worker
        log.exception("report generation failed")
        for task in tasks:
            store.reports.finish_report(task.key, error=public_message(error))
        return pending
    for task, body in zip(tasks, bodies, strict=True):
        store.reports.finish_report(task.key, body)
    return pending
