"""Comparison tasks, leases, comparisons and their export, over HTTP with a real store; then the client.

Jobs with best-of-n candidates and critique reports are written straight into the store, so no model runs.
"""

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar.testing import TestClient
from postgres_cluster import new_database

from recursum.clients.client import AsyncClient, Client
from recursum.clients.exceptions import Conflict, TransportError
from recursum.schemas.evaluations import (
    ComparisonRead,
    ComparisonRecord,
    EvaluationStats,
    EvaluationTask,
    EvaluatorStats,
    FlaggedItem,
    TaskCandidate,
)
from recursum.schemas.reports import CompareRequest, CritiqueItem, CritiqueReport, CritiqueRequest, ReportRead
from recursum.schemas.tree import Candidate, EvidenceLink, Node, Sentence, Span
from recursum.service.api.app import create_app
from recursum.service.api.evaluations.pairs import eligible_pairs
from recursum.service.engine.helpers.critique import critique_parts
from recursum.service.engine.helpers.tasks import node_material
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.prompts import critique_sentences, task_prompt, verify_prompt
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.evaluations import EvaluationLease
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store
from recursum.training.critique_data import verification_comparisons
from recursum.training.datasets import Comparison, read_jsonl

KEYS = "alice:a-secret:summarize,eve:e-secret:evaluate,frank:f-secret:evaluate,root:r-secret:admin"
EVE, FRANK, ROOT = ({"Authorization": f"Bearer {secret}"} for secret in ("e-secret", "f-secret", "r-secret"))
ALICE = {"Authorization": "Bearer a-secret"}

TEXT = ("Alice found a golden key. She opened the little door.\n\n"
        "The Rabbit hurried past. He was late for the Duchess.")
DOCUMENT = make_document(TEXT, title="Alice")
BREAK = TEXT.index("\n\n")
JOB_ID = "job-1"


def _sentence(text: str, target: str = "source", index: int = 0, support: float = 0.9) -> Sentence:
    return Sentence(text=text, support=support, source_support=support, unsupported=support < 0.25,
                    links=(EvidenceLink(target=target, sentence=index, score=support),),
                    source_spans=(Span(0, 25),))


def _leaf(index: int, summary: str, candidates: tuple[Candidate, ...] = ()) -> Node:
    span = Span(0, BREAK) if index == 0 else Span(BREAK + 2, len(TEXT))
    first = TEXT.index(".", span.start) + 1
    return Node(id=f"leaf-{index}", key=f"key-leaf-{index}", height=0, index=index, role="chunk",
                adapter=None, span=span, children=(), summary=summary, sentences=(_sentence(summary),),
                source_sentences=(Span(span.start, first), Span(first + 1, span.end)), reward=0.8,
                candidates=candidates)


LEAF_0 = _leaf(0, "Alice found a key and opened a door.", (
    Candidate(summary="Alice found a golden key.", sentences=(_sentence("Alice found a golden key."),),
              reward=0.2, source="sample:1"),
    Candidate(summary="The Queen opened the door. She was angry.",
              sentences=(_sentence("The Queen opened the door.", support=0.1),
                         _sentence("She was angry.", index=1, support=0.1)),
              reward=-0.5, source="sample:2"),
))
LEAF_1 = _leaf(1, "The Rabbit hurried to the Duchess.")
ROOT_NODE = Node(
    id="root", key="key-root", height=1, index=0, role="merge", adapter=None, span=Span(0, len(TEXT)),
    children=("leaf-0", "leaf-1"), summary="Alice found a key while the Rabbit hurried past.",
    sentences=(_sentence("Alice found a key while the Rabbit hurried past.", target="leaf-0"),),
    candidates=(Candidate(summary="Alice and the Rabbit went to the Duchess.",
                          sentences=(_sentence("Alice and the Rabbit went to the Duchess.", "leaf-1",
                                               support=0.2),),
                          source="adapter:merge-v2"),),
)


def seed_job(store: Store, job_id: str = JOB_ID, created: float = 100.0,
             nodes: tuple[Node, ...] = (LEAF_0, LEAF_1, ROOT_NODE)) -> None:
    """A finished job whose leaf 0 kept two best-of-n candidates and whose root kept one."""
    store.jobs.put_document(DOCUMENT)
    store.jobs.create_job(JobRecord(id=job_id, owner="alice", document_id=DOCUMENT.id, title="Alice",
                               config=TreeConfig(), status="done", created=created, root="root",
                               evaluation=True))
    for node in nodes:
        store.nodes.put_job_node(job_id, node)


def seed_critiques(store: Store, job_id: str = JOB_ID) -> tuple[str, str]:
    """Two done critiques (greedy and a sample) of the root's chosen summary."""
    ids = []
    for sample, explanation in ((0, "the leaves never say they met"), (1, "fine")):
        items = (CritiqueItem(kind="unsupported", origin="model", quote=ROOT_NODE.sentences[0].text,
                              sentence=0, severity=0.5, explanation=explanation),) if sample == 0 else ()
        report = ReportRead(id=f"critique-{sample}", job_id=job_id, node_id="root", kind="critique",
                            status="done", request=CritiqueRequest(summary=-1, sample=sample),
                            body=CritiqueReport(items=items), created=200.0 + sample, finished=201.0 + sample)
        store.reports.create_report(report)
        ids.append(report.id)
    return ids[0], ids[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request, tmp_path):
    """A store on SQLite and, where a throwaway cluster can run, on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'evaluations.db'}"
    else:
        url = new_database(request.getfixturevalue("postgres_server"))
    store = Store(url)
    yield store
    store.close()


def _app(store: Store, tmp_path: Path, **overrides):
    # A model that cannot load: these routes never need one, and nothing is downloaded.
    settings = ServiceSettings(api_keys=parse_api_keys(KEYS), model=ModelSpec(base=str(tmp_path / "absent")),
                               **overrides)
    return TestClient(create_app(settings, store=store))


@pytest.fixture
def client(store, tmp_path):
    with _app(store, tmp_path) as client:
        yield client


def _task(client, headers=EVE, **params) -> EvaluationTask | None:
    response = client.get("/v1/evaluations/tasks", headers=headers, params=params)
    assert response.status_code in (200, 204), response.text
    return None if response.status_code == 204 else msgspec.json.decode(response.content, type=EvaluationTask)


def _compare(client, task_id: str, headers=EVE, **fields):
    return client.post("/v1/comparisons", headers=headers,
                       json={"task": task_id, "preference": 1, "confidence": 0.8} | fields)


def _side(task: EvaluationTask, ref: str) -> TaskCandidate:
    return next(candidate for candidate in task.candidates if candidate.ref == ref)


# Tasks and leases


def test_a_task_pairs_the_chosen_summary_with_a_candidate_and_shows_the_leaf_source(client, store):
    seed_job(store)
    task = _task(client)
    assert task.kind == "summary" and task.node_id == "leaf-0" and task.height == 0 and task.role == "chunk"
    assert task.source == TEXT[:BREAK] and task.children == ()
    assert {c.ref for c in task.candidates} == {"summary", "candidate:0"}
    chosen = _side(task, "summary")
    assert chosen.text == LEAF_0.summary and chosen.sentences == LEAF_0.sentences
    assert [link.label for link in chosen.reports] == ["Evidence", "Critique"]
    assert all(link.url == f"/v1/summaries/{JOB_ID}/nodes/leaf-0/reports" for link in chosen.reports)
    assert isinstance(task.reports[0].request, CompareRequest)


def test_unsupported_sentences_of_a_candidate_are_flagged_in_the_task(client, store):
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_0, candidates=LEAF_0.candidates[1:]), LEAF_1))
    task = _task(client)
    candidate = _side(task, "candidate:0")
    assert [sentence.unsupported for sentence in candidate.sentences] == [True, True]


def test_asking_again_returns_the_same_leased_task(client, store):
    seed_job(store)
    first = _task(client)
    again = _task(client)
    assert again.id == first.id and again.leased_until == first.leased_until


def test_a_leased_pair_is_not_offered_to_another_evaluator(client, store):
    seed_job(store)
    eve, frank = _task(client, EVE), _task(client, FRANK)
    assert eve.id != frank.id
    refs = [(task.node_id, {c.ref for c in task.candidates}) for task in (eve, frank)]
    assert refs[0] != refs[1]


def test_no_task_answers_204(client, store):
    assert client.get("/v1/evaluations/tasks", headers=EVE).status_code == 204
    seed_job(store, nodes=(LEAF_1,))  # a node without candidates has nothing to compare
    assert client.get("/v1/evaluations/tasks", headers=EVE).status_code == 204


def test_identical_candidates_are_never_offered(client, store):
    twin = Candidate(summary=f"  {LEAF_1.summary} ", sentences=LEAF_1.sentences, source="sample:1")
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_1, candidates=(twin,)),))
    assert client.get("/v1/evaluations/tasks", headers=EVE).status_code == 204


@pytest.mark.parametrize(("params", "node_id"), [({"height": 1}, "root"), ({"role": "merge"}, "root"),
                                                 ({"role": "chunk"}, "leaf-0"), ({"height": 0}, "leaf-0")])
def test_filters_choose_the_height_and_role(client, store, params, node_id):
    seed_job(store)
    task = _task(client, **params)
    assert task.node_id == node_id
    if node_id == "root":
        assert [child.summary for child in task.children] == [LEAF_0.summary, LEAF_1.summary]
        assert task.source is None


def test_asking_with_filters_the_held_task_does_not_match_gives_it_back(client, store):
    seed_job(store)
    leaf = _task(client)
    root = _task(client, height=1)
    assert root.node_id == "root"
    assert _compare(client, leaf.id).status_code == 409
    assert _task(client, FRANK).node_id == "leaf-0"  # free again for others


def test_bad_filters_are_refused_with_a_problem(client, store):
    for params in ({"height": -1}, {"role": "root"}, {"kind": "poem"}, {"height": "x"}):
        response = client.get("/v1/evaluations/tasks", headers=EVE, params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith("application/problem+json")


def test_critique_tasks_pair_two_critiques_of_one_summary(client, store):
    seed_job(store)
    seed_critiques(store)
    task = _task(client, kind="critique")
    assert task.kind == "critique" and task.node_id == "root"
    assert {c.ref for c in task.candidates} == {"report:critique-0", "report:critique-1"}
    assert task.summary == ROOT_NODE.summary
    greedy = _side(task, "report:critique-0")
    assert greedy.items and "the leaves never say they met" in greedy.items[0]
    assert _side(task, "report:critique-1").text == "No problems found."


def test_a_lease_is_atomic_in_the_store(store):
    seed_job(store)
    pair = next(eligible_pairs(store, (None, None, None), set()))
    now = time.time()
    first = EvaluationLease(id="a" * 32, task_id=pair.id, evaluator="eve", leased=now, expires=now + 60)
    second = EvaluationLease(id="b" * 32, task_id=pair.id, evaluator="frank", leased=now, expires=now + 60)
    assert store.evaluations.lease_pair(pair, first) is True
    assert store.evaluations.lease_pair(pair, second) is False
    assert store.evaluations.get_lease("b" * 32) is None


# Comparisons


def test_a_comparison_is_stored_with_its_texts_and_the_pair_moves_on(client, store):
    seed_job(store)
    task = _task(client)
    response = _compare(client, task.id, preference=1, rationale="B says less but nothing false",
                        flagged=[{"candidate": 0, "item": 0}])
    assert response.status_code == 201, response.text
    saved = msgspec.json.decode(response.content, type=ComparisonRead)
    assert saved.evaluator == "eve" and saved.preference == 1
    assert saved.flagged == (FlaggedItem(candidate=0, item=0),)
    stored = store.evaluations.get_comparison(saved.id)
    assert stored.candidates == tuple(c.text for c in task.candidates)
    assert stored.input == TEXT[:BREAK] and stored.height == 0 and stored.document_id == DOCUMENT.id
    following = _task(client)
    assert (following.node_id, following.candidates) != (task.node_id, task.candidates)
    assert _task(client, FRANK).candidates != task.candidates  # one evaluator per pair by default


def test_with_an_overlap_of_two_a_pair_goes_to_two_distinct_evaluators_and_no_third(store, tmp_path):
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_0, candidates=LEAF_0.candidates[:1]),))
    with _app(store, tmp_path, evaluation_overlap=2) as client:
        eve = _task(client, EVE)
        assert _compare(client, eve.id).status_code == 201
        frank = _task(client, FRANK)
        assert frank.candidates == eve.candidates
        assert _compare(client, frank.id, headers=FRANK).status_code == 201
        assert client.get("/v1/evaluations/tasks", headers=ROOT).status_code == 204


def test_a_second_submission_for_the_same_lease_is_refused_with_409(client, store):
    seed_job(store)
    task = _task(client)
    assert _compare(client, task.id).status_code == 201
    before = store.counts()
    again = _compare(client, task.id, preference=0)
    assert again.status_code == 409
    assert "already answered" in again.json()["detail"]
    assert store.counts() == before


def test_an_expired_lease_is_refused_with_409_and_the_pair_is_offered_again(store, tmp_path):
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_0, candidates=LEAF_0.candidates[:1]),))
    with _app(store, tmp_path, evaluation_lease_seconds=0.2) as client:
        task = _task(client)
        time.sleep(0.3)
        frank = _task(client, FRANK)
        answer = _compare(client, task.id)
    assert answer.status_code == 409 and "expired" in answer.json()["detail"]
    assert frank.candidates == task.candidates
    assert store.counts()["comparisons"] == 0


def test_a_task_leased_to_someone_else_is_not_found(client, store):
    seed_job(store)
    task = _task(client, EVE)
    assert _compare(client, task.id, headers=FRANK).status_code == 404


@pytest.mark.parametrize(("fields", "status"), [
    ({"preference": 2}, 400),
    ({"preference": "B"}, 400),
    ({"confidence": 1.5}, 400),
    ({"confidence": -0.1}, 400),
    ({"surprise": True}, 400),
    ({"rationale": "x" * 4001}, 400),
    ({"reports_opened": ["no-such-report"]}, 422),
    ({"flagged": [{"candidate": 2, "item": 0}]}, 400),
    ({"flagged": [{"candidate": 0, "item": 7}]}, 422),
    ({"task": "f" * 32}, 404),
])
def test_bad_comparisons_get_a_problem_and_change_nothing(client, store, fields, status):
    seed_job(store)
    task = _task(client)
    before = store.counts()
    response = client.post("/v1/comparisons", headers=EVE,
                           json={"task": task.id, "preference": 1, "confidence": 0.5} | fields)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert store.counts() == before
    assert _compare(client, task.id).status_code == 201  # the lease survives a refused answer


def test_reports_opened_must_be_reports_of_the_tasks_node(client, store):
    seed_job(store)
    seed_critiques(store)  # reports of the root, not of leaf 0
    task = _task(client, kind="summary", height=0)
    response = _compare(client, task.id, reports_opened=["critique-0"])
    assert response.status_code == 422 and "not reports of node leaf-0" in response.json()["detail"]
    root = _task(client, kind="summary", height=1)
    assert _compare(client, root.id, reports_opened=["critique-0"]).status_code == 201


def test_evaluating_needs_the_evaluate_scope_and_exporting_admin(client, store):
    seed_job(store)
    assert client.get("/v1/evaluations/tasks").status_code == 401
    assert client.get("/v1/evaluations/tasks", headers=ALICE).status_code == 403
    refused = client.post("/v1/comparisons", headers=ALICE, json={"task": "x", "preference": 0})
    assert refused.status_code == 403
    assert client.get("/v1/comparisons/export", headers=EVE).status_code == 403
    assert client.get("/v1/comparisons/export", headers=ROOT).status_code == 200


def test_a_comparison_is_read_back_by_its_evaluator_and_admin_only(client, store):
    seed_job(store)
    saved = _compare(client, _task(client).id).json()
    assert client.get(f"/v1/comparisons/{saved['id']}", headers=EVE).json()["id"] == saved["id"]
    assert client.get(f"/v1/comparisons/{saved['id']}", headers=ROOT).status_code == 200
    assert client.get(f"/v1/comparisons/{saved['id']}", headers=FRANK).status_code == 404


# Export


def _answer_everything(client, headers=EVE) -> list[ComparisonRead]:
    saved = []
    while (task := _task(client, headers)) is not None:
        response = _compare(client, task.id, headers, preference=len(saved) % 2,
                            reports_opened=[r for r in ("critique-0",) if task.node_id == "root"])
        assert response.status_code == 201, response.text
        saved.append(msgspec.json.decode(response.content, type=ComparisonRead))
    return saved


def test_the_export_decodes_as_training_comparisons(client, store, tmp_path):
    seed_job(store)
    seed_critiques(store)
    saved = _answer_everything(client)
    assert sorted(c.kind for c in saved) == ["critique", "summary", "summary", "summary"]
    response = client.get("/v1/comparisons/export", headers=ROOT, params={"format": "jsonl"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/jsonl")
    exported = tmp_path / "comparisons.jsonl"
    exported.write_bytes(response.content)
    records = list(read_jsonl(exported, Comparison))
    assert [r.id for r in records] == [c.id for c in saved]
    assert sorted(r.task for r in records) == ["chunk", "chunk", "helper:critique", "merge"]
    by_task = {r.task: r for r in records}
    assert by_task["merge"].input == f"{LEAF_0.summary}\n\n{LEAF_1.summary}"
    assert by_task["chunk"].input == TEXT[:BREAK] and by_task["chunk"].height == 0
    assert all(r.group == DOCUMENT.id and r.evaluator == "recursum:eve" for r in records)
    critique = by_task["helper:critique"]
    assert critique.height == 1 and critique.reports_seen == ("critique-0",)
    assert ROOT_NODE.summary in critique.input and LEAF_0.summary in critique.input
    assert set(critique.policies) == {"sample:0", "sample:1"}
    # Training reads back the sentences the helper judged, each beside the closest evidence it was shown,
    # and trains on the one sentence the two critiques judge differently, with the served prompt.
    material = node_material(ROOT_NODE, [LEAF_0, LEAF_1], TEXT)
    _, sentences, closest = critique_parts(ROOT_NODE.sentences, material)
    assert critique_sentences(critique.input) == (sentences, closest) and closest[0] == LEAF_0.summary
    (verification,) = verification_comparisons([critique])
    assert verification.task == "helper:verify" and verification.preferred == critique.preferred
    assert set(verification.candidates) == {"UNSUPPORTED", "SUPPORTED"}
    assert task_prompt(verification.task, verification.input) == verify_prompt(sentences[0], closest[0])


def test_the_export_record_is_the_training_comparison_field_for_field():
    assert ComparisonRecord.__struct_fields__ == Comparison.__struct_fields__


def test_export_since_takes_epoch_seconds_or_iso_times(client, store):
    seed_job(store)
    first = _compare(client, _task(client).id).json()
    time.sleep(0.05)
    cut = first["created"] + 0.01
    second = _compare(client, _task(client).id).json()

    def exported(since):
        response = client.get("/v1/comparisons/export", headers=ROOT, params={"since": since})
        assert response.status_code == 200, response.text
        return [msgspec.json.decode(line, type=ComparisonRecord).id for line in response.content.splitlines()]

    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + f".{int(cut % 1 * 1e6):06d}Z"
    assert exported(str(cut)) == exported(iso) == [second["id"]]
    assert exported("0") == [first["id"], second["id"]]


def test_an_export_says_how_many_records_it_holds_and_continues_after_the_last(client, store, monkeypatch):
    seed_job(store)
    first = _compare(client, _task(client).id).json()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # a replica whose clock lags an hour
    second = _compare(client, _task(client).id).json()
    monkeypatch.setattr(time, "time", real_time)

    everything = client.get("/v1/comparisons/export", headers=ROOT)
    assert everything.headers["X-Recursum-Export-Count"] == "2"
    through = int(everything.headers["X-Recursum-Export-Through"])
    # In the order they were stored, whatever the clocks said: the lagging one is not lost before the cursor.
    assert [msgspec.json.decode(line)["id"] for line in everything.content.splitlines()] == [first["id"],
                                                                                             second["id"]]
    rest = client.get("/v1/comparisons/export", headers=ROOT, params={"after": through - 1})
    assert rest.headers["X-Recursum-Export-Count"] == "1"
    assert [msgspec.json.decode(line)["id"] for line in rest.content.splitlines()] == [second["id"]]


def test_the_client_refuses_an_export_cut_short():
    def handler(request):
        whole = _answer(request)  # two records
        return httpx.Response(200, content=whole.content.splitlines()[0] + b"\n",
                              headers={"X-Recursum-Export-Count": "2"})

    client = Client(URL, api_key="r-secret", transport=httpx.MockTransport(handler))
    with client, pytest.raises(TransportError, match="cut short: 1 of 2"):
        client.export_comparisons()


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"since": "nan"}, {"since": "inf"},
                                    {"format": "csv"}])
def test_a_bad_export_query_is_a_400_problem(client, params):
    response = client.get("/v1/comparisons/export", headers=ROOT, params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_comparisons_outlive_their_job(client, store):
    seed_job(store)
    _compare(client, _task(client).id)
    store.jobs.delete_job(JOB_ID)
    lines = client.get("/v1/comparisons/export", headers=ROOT).content.splitlines()
    assert len(lines) == 1


# The typed client, against MockTransport

URL = "http://recursum.test"
TASK = EvaluationTask(id="lease-1", kind="summary", job_id=JOB_ID, node_id="leaf-0", title="Alice", height=0,
                      role="chunk", leased_until=1000.0, source="text",
                      candidates=(TaskCandidate(ref="summary", text="A."),
                                  TaskCandidate(ref="candidate:0", text="B.")))
MINE = EvaluatorStats(evaluator="eve", judged=3, gold_answered=1, gold_accuracy=1.0, overlapped=0,
                      majority_agreement=None, median_seconds=12.0, reports_opened=2, judged_with_reports=1)
SAVED = ComparisonRead(id="c-1", task="lease-1", kind="summary", job_id=JOB_ID, node_id="leaf-0", height=0,
                       evaluator="eve", preference=1, confidence=0.5, rationale="", reports_opened=("r-1",),
                       flagged=(), created=1.0)


def _answer(request: httpx.Request) -> httpx.Response:
    match request.method, request.url.path:
        case "GET", "/v1/evaluations/tasks":
            if request.url.params.get("height") == "9":
                return httpx.Response(204)
            return httpx.Response(200, content=msgspec.json.encode(TASK))
        case "POST", "/v1/comparisons":
            body = msgspec.json.decode(request.content)
            if body["task"] == "answered":
                return httpx.Response(409, json={"type": "about:blank", "title": "Conflict", "status": 409,
                                                 "detail": "already answered"})
            return httpx.Response(201, content=msgspec.json.encode(SAVED))
        case "GET", "/v1/comparisons/export":
            record = ComparisonRecord(task="chunk", height=0, input="text", group="doc", id="c-1",
                                      candidates=("A.", "B."), preferred=1, evaluator="recursum:eve",
                                      created=datetime(2026, 1, 1, tzinfo=UTC))
            line = msgspec.json.encode(record)
            return httpx.Response(200, content=line + b"\n" + line + b"\n")
        case "GET", "/v1/evaluations/stats/me":
            return httpx.Response(200, content=msgspec.json.encode(MINE))
        case "GET", "/v1/evaluations/stats":
            return httpx.Response(200, content=msgspec.json.encode(EvaluationStats(
                evaluators=[MINE], pairs_overlapped=0, inter_evaluator_agreement=None,
                agreement_with_reports=None, agreement_without_reports=None)))
    return httpx.Response(404, json={"type": "about:blank", "title": "Not found", "status": 404})


def test_the_client_leases_compares_and_exports():
    requests = []

    def handler(request):
        requests.append(request)
        return _answer(request)

    with Client(URL, api_key="e-secret", transport=httpx.MockTransport(handler)) as client:
        assert client.next_task(height=0, kind="summary") == TASK
        assert client.next_task(height=9) is None
        assert client.compare("lease-1", 1, confidence=0.5, reports_opened=["r-1"]) == SAVED
        with pytest.raises(Conflict, match="already answered"):
            client.compare("answered", "tie")
        assert [r.id for r in client.export_comparisons(since=10.5)] == ["c-1", "c-1"]
        assert client.my_evaluation_stats() == MINE
        assert client.evaluation_stats().evaluators == [MINE]
    requests = [r for r in requests if not r.url.path.startswith("/v1/evaluations/stats")]
    assert requests[0].url.params["height"] == "0" and requests[0].url.params["kind"] == "summary"
    sent = msgspec.json.decode(requests[2].content)
    assert sent == {"task": "lease-1", "preference": 1, "confidence": 0.5, "rationale": "",
                    "reports_opened": ["r-1"], "flagged": []}
    assert requests[-1].url.params["since"] == "10.5"


def test_the_async_client_has_the_same_evaluation_methods():
    async def run():
        async with AsyncClient(URL, api_key="e-secret", transport=httpx.MockTransport(_answer)) as client:
            assert await client.next_task() == TASK
            assert await client.next_task(height=9) is None
            assert (await client.compare("lease-1", 0)).id == "c-1"
            assert len(await client.export_comparisons()) == 2
            assert await client.my_evaluation_stats() == MINE
            assert (await client.evaluation_stats()).evaluators == [MINE]

    asyncio.run(run())


# Tenancy: evaluation is opt-in per job


def test_a_job_not_offered_to_evaluation_gives_evaluators_no_task_and_no_reports(client, store):
    seed_job(store)
    store.jobs.update_job(JOB_ID, evaluation=False)
    assert _task(client) is None
    refused = client.post(f"/v1/summaries/{JOB_ID}/nodes/leaf-0/reports", headers=EVE,
                          json={"kind": "evidence"})
    assert refused.status_code == 404  # as if it did not exist: its owner's text stays the owner's


def test_comparisons_can_be_deleted_with_their_job_when_the_operator_keeps_none(store, tmp_path):
    seed_job(store)
    with _app(store, tmp_path, keep_comparisons=False) as client:
        _compare(client, _task(client).id)
        assert client.delete(f"/v1/summaries/{JOB_ID}", headers=ALICE).json()["outcome"] == "deleted"
        assert client.get("/v1/comparisons/export", headers=ROOT).content == b""
