"""Evaluator quality: gold items (never revealed, scored per evaluator, never exported), tasks ordered by
how unsure the reward model was, and the statistics against a fixture computed by hand."""

import msgspec
import pytest
from fake_engine import FakeEngine
from litestar.testing import TestClient
from test_evaluations import DOCUMENT, EVE, FRANK, KEYS, LEAF_0, LEAF_1, ROOT, _sentence, seed_job

from recursum.schemas.tree import Candidate
from recursum.service.api.app import create_app
from recursum.service.api.evaluations.stats import evaluation_stats
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.tree import TreeConfig
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.evaluations import Judgement
from recursum.service.store.records import JobRecord
from recursum.service.store.repository import Store

TWO_SENTENCES = ("Alice found a golden key.", "She opened the little door.")
GOLD_LEAF = msgspec.structs.replace(
    LEAF_0, summary=" ".join(TWO_SENTENCES), sentences=tuple(_sentence(s) for s in TWO_SENTENCES),
    candidates=LEAF_0.candidates[:1])


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'quality.db'}")
    yield store
    store.close()


def _client(store, **settings):
    app = create_app(ServiceSettings(api_keys=parse_api_keys(KEYS), **settings), engine=FakeEngine(),
                     store=store)
    return TestClient(app)


def _seed_other_document(store: Store) -> None:
    """A second story, whose summary sentences are where foreign plants come from."""
    other = make_document("The Hatter poured tea for the March Hare.", title="Tea")
    store.jobs.put_document(other)
    store.jobs.create_job(JobRecord(id="job-tea", owner="alice", document_id=other.id, title="Tea",
                                    config=TreeConfig(), status="done", created=50.0, root="leaf-0"))
    tea = "The Hatter poured tea."
    store.nodes.put_job_node("job-tea", msgspec.structs.replace(LEAF_1, id="leaf-0", summary=tea,
                                                                sentences=(_sentence(tea),)))


def _next(client, headers) -> dict:
    response = client.get("/v1/evaluations/tasks", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _engine_ready(client) -> None:
    import time

    deadline = time.time() + 10
    while client.app.state.worker.engine is None:
        assert time.time() < deadline
        time.sleep(0.01)


def test_a_gold_item_looks_like_any_task_scores_its_evaluator_and_is_never_exported(store):
    seed_job(store, nodes=(GOLD_LEAF,))
    _seed_other_document(store)
    with _client(store, gold_rate=1.0) as client:
        _engine_ready(client)
        task = _next(client, EVE)
        payload = msgspec.json.encode(task).decode().lower()
        assert '"gold' not in payload and "gold:" not in payload and "plant" not in payload
        assert {side["ref"] for side in task["candidates"]} == {"summary", "candidate:1"}
        shown = {"ref", "text", "sentences", "items", "reports"}
        assert all(set(side) <= shown for side in task["candidates"])
        planted = next(side for side in task["candidates"] if side["ref"] == "candidate:1")
        assert planted["text"] != GOLD_LEAF.summary and "The Hatter poured tea." in planted["text"]
        # The planted side's report buttons work like any candidate's.
        for link in planted["reports"]:
            answer = client.post(link["url"], json=link["request"], headers=EVE)
            assert answer.status_code in (201, 202), answer.text
        original = next(i for i, side in enumerate(task["candidates"]) if side["ref"] == "summary")
        assert client.post("/v1/comparisons", headers=EVE,
                           json={"task": task["id"], "preference": original}).status_code == 201
        frank = _next(client, FRANK)
        assert frank["candidates"] == task["candidates"], "one gold item per node, shown to each evaluator"
        assert client.post("/v1/comparisons", headers=FRANK,
                           json={"task": frank["id"], "preference": 1 - original}).status_code == 201
        stats = {s["evaluator"]: s for s in client.get("/v1/evaluations/stats", headers=ROOT).json()[
            "evaluators"]}
        assert (stats["eve"]["gold_answered"], stats["eve"]["gold_accuracy"]) == (1, 1.0)
        assert (stats["frank"]["gold_answered"], stats["frank"]["gold_accuracy"]) == (1, 0.0)
        assert stats["eve"]["judged"] == 0
        mine = client.get("/v1/evaluations/stats/me", headers=EVE).json()
        assert mine["gold_accuracy"] == 1.0
        export = client.get("/v1/comparisons/export", headers=ROOT)
        assert export.headers["x-recursum-export-count"] == "0" and not export.content.strip()
        assert client.get("/v1/evaluations/stats", headers=EVE).status_code == 403


def test_without_gold_the_pair_the_reward_model_was_least_sure_of_comes_first(store):
    sure, unsure = (Candidate(summary=text, sentences=(_sentence(text),), reward=reward, source=source)
                    for text, reward, source in (("Alice lost the key.", -0.9, "sample:1"),
                                                 ("Alice found the key.", 0.7, "sample:2")))
    seed_job(store, nodes=(msgspec.structs.replace(LEAF_0, candidates=(sure, unsure)),
                           msgspec.structs.replace(LEAF_1, candidates=(sure,), reward=None)))
    with _client(store, gold_rate=0.0) as client:
        first = _next(client, EVE)
        assert {side["ref"] for side in first["candidates"]} == {"summary", "candidate:1"}  # |0.8 - 0.7|
        assert client.post("/v1/comparisons", headers=EVE, json={"task": first["id"], "preference": 0})
        second = _next(client, EVE)
        assert second["node_id"] == "leaf-0"  # |0.8 - (-0.9)|: scored, so before the unscored pair
        client.post("/v1/comparisons", headers=EVE, json={"task": second["id"], "preference": 0})
        assert _next(client, EVE)["node_id"] == "leaf-1"


def _judgement(task, evaluator, preference, gold=None, reports=0, seconds=10.0) -> Judgement:
    return Judgement(task_id=task, evaluator=evaluator, preference=preference, gold_correct=gold,
                     reports_opened=reports, seconds=seconds)


def test_statistics_match_a_fixture_computed_by_hand():
    judgements = [
        # p1: eve, frank and gail all say 0.
        _judgement("p1", "eve", "0", reports=2, seconds=10), _judgement("p1", "frank", "0", seconds=20),
        _judgement("p1", "gail", "0", seconds=30),
        # p2: eve 1, frank 0, gail 0 -> eve disagrees with the others' majority.
        _judgement("p2", "eve", "1", seconds=40), _judgement("p2", "frank", "0", reports=1, seconds=50),
        _judgement("p2", "gail", "0", seconds=60),
        # p3: eve and frank split: neither has a majority among the others' (one each), they disagree.
        _judgement("p3", "eve", "tie", seconds=70), _judgement("p3", "frank", "1", seconds=80),
        # p4: eve alone (not overlapped).
        _judgement("p4", "eve", "0", seconds=90),
        # Gold items: eve right twice, frank wrong once.
        _judgement("g1", "eve", "0", gold=True, seconds=5),
        _judgement("g2", "eve", "1", gold=True, seconds=5),
        _judgement("g1", "frank", "1", gold=False, seconds=100),
    ]
    stats = evaluation_stats(judgements)
    by_name = {s.evaluator: s for s in stats.evaluators}
    eve, frank, gail = by_name["eve"], by_name["frank"], by_name["gail"]
    # eve: p1 agrees (frank, gail say 0); p2 disagrees (they say 0); p3: the other is frank alone, "1", a
    # strict majority of one: eve's tie disagrees.
    assert (eve.judged, eve.overlapped, eve.majority_agreement) == (4, 3, pytest.approx(1 / 3))
    # frank: p1 agrees; p2: others eve 1, gail 0 -> no majority, left out; p3: eve "tie" -> disagrees.
    assert (frank.judged, frank.overlapped, frank.majority_agreement) == (3, 3, 0.5)
    # gail: p1 agrees; p2: others eve 1, frank 0 -> no majority.
    assert gail.majority_agreement == 1.0
    assert (eve.gold_answered, eve.gold_accuracy) == (2, 1.0)
    assert (frank.gold_accuracy, gail.gold_accuracy) == (0.0, None)
    assert eve.median_seconds == 25.0  # of 5, 5, 10, 40, 70, 90
    assert frank.median_seconds == 65.0  # of 20, 50, 80, 100
    assert (eve.reports_opened, eve.judged_with_reports) == (2, 1)
    # Evaluator pairs on overlapped pairs: p1 3 of 3 agree, p2 1 of 3 (frank-gail), p3 0 of 1.
    assert stats.pairs_overlapped == 3
    assert stats.inter_evaluator_agreement == pytest.approx(4 / 7)
    # Judgements with a majority among the others: with reports: eve p1 (agree), frank p2 (left out, no
    # majority) -> 1/1; without: frank p1, gail p1 agree, eve p2 no, gail p2 left out, eve p3 no, frank p3 no.
    assert stats.agreement_with_reports == 1.0
    assert stats.agreement_without_reports == pytest.approx(2 / 5)


def test_a_second_document_gives_a_foreign_sentence_otherwise_a_negation():
    import random

    from recursum.service.api.evaluations.gold import gold_plant

    index, false, kind = gold_plant(list(TWO_SENTENCES), ["The Hatter poured tea."], random.Random(0))
    assert kind == "foreign" and false == "The Hatter poured tea." and index in (0, 1)
    index, false, kind = gold_plant(list(TWO_SENTENCES), [], random.Random(0))
    assert kind == "negation" and false != TWO_SENTENCES[index]
    assert gold_plant(["Hello."], [], random.Random(0)) is None
    assert DOCUMENT.id
