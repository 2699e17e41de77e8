"""Comparisons as their evaluators read them and as training reads them (`GET /v1/comparisons/export`)."""

import math
from datetime import UTC, datetime

from recursum.schemas.evaluations import ComparisonRead, ComparisonRecord, FlaggedItem
from recursum.service.api.problems import ApiError
from recursum.service.store.evaluations import StoredComparison

EVALUATOR_PREFIX = "recursum:"  # exported evaluator names: "recursum:<API key name>"


class InvalidQuery(ApiError):
    """Raised when a query parameter cannot be read (an unparseable `since`)."""

    status, title = 400, "Invalid query parameter"


def parse_since(since: str | None) -> float | None:
    """Epoch seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if since is None or not since.strip():
        return None
    try:
        value = float(since)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):  # nan compares false with every time: an export that silently is empty
            raise InvalidQuery(f"since={since!r} is not a time")
        return value
    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidQuery(f"since={since!r} is neither epoch seconds nor an ISO 8601 time "
                          "(like 2026-11-24T10:00:00Z)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def comparison_read(stored: StoredComparison) -> ComparisonRead:
    preference = int(stored.preference) if stored.preference in ("0", "1") else "tie"
    return ComparisonRead(
        id=stored.id, task=stored.lease_id, kind=stored.kind, job_id=stored.job_id, node_id=stored.node_id,
        height=stored.height, evaluator=stored.evaluator, preference=preference, confidence=stored.confidence,
        rationale=stored.rationale, reports_opened=stored.reports_opened,
        flagged=tuple(FlaggedItem(candidate=c, item=i) for c, i in stored.flagged), created=stored.created,
    )


def export_record(stored: StoredComparison) -> ComparisonRecord:
    """The training `Comparison` of a stored comparison: task chunk / merge by height, helper:critique."""
    task = "helper:critique" if stored.kind == "critique" else ("chunk" if stored.height == 0 else "merge")
    preferred = int(stored.preference) if stored.preference in ("0", "1") else "tie"
    return ComparisonRecord(
        task=task, height=stored.height, input=stored.input, group=stored.document_id, id=stored.id,
        candidates=stored.candidates, preferred=preferred, confidence=stored.confidence,
        evaluator=EVALUATOR_PREFIX + stored.evaluator, reports_seen=stored.reports_opened,
        policies=stored.policies, created=datetime.fromtimestamp(stored.created, UTC),
    )
