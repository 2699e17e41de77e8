"""Helper reports: the strict critique parser, evidence-grounded items, report builders, batching and caching
in the worker, and the report routes with their errors."""

import dataclasses
import time
from unittest.mock import MagicMock

import msgspec
import pytest
from conftest import build_tiny_model
from litestar.testing import TestClient

from recursum.schemas.reports import CompareRequest, CritiqueRequest, EvidenceRequest
from recursum.schemas.tree import Candidate, Node, Span
from recursum.service.api.app import create_app
from recursum.service.api.auth import Principal
from recursum.service.api.reports.service import ReportService
from recursum.service.engine.errors import ModelError
from recursum.service.engine.facade import ModelEngine
from recursum.service.engine.helpers import verify as verify_module
from recursum.service.engine.helpers.compare import align, compare_report
from recursum.service.engine.helpers.critique import (
    counterfactual_items,
    critique_parts,
    match_quote,
    parse_items,
)
from recursum.service.engine.helpers.critique_report import critique_report
from recursum.service.engine.helpers.evidence_report import evidence_report
from recursum.service.engine.helpers.reports import build_reports
from recursum.service.engine.helpers.tasks import (
    InvalidReportRequest,
    ReportTask,
    check_request,
    node_material,
)
from recursum.service.engine.helpers.verify import (
    choose,
    verdict_critique,
    verdict_distributions,
    verdict_items,
    verdict_token_ids,
)
from recursum.service.engine.helpers.verify_calibration import VerifyCalibration
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.entities import known_names
from recursum.service.engine.pipeline.evidence import leaf_evidence
from recursum.service.engine.pipeline.prompts import render_messages, verify_prompt
from recursum.service.engine.pipeline.sentences import sentence_spans
from recursum.service.jobs.reports import finish_pending_reports
from recursum.service.settings import ServiceSettings, parse_api_keys
from recursum.service.store.repository import Store

SOURCE_TEXT = (
    "Alice sat on the bank beside her sister. A White Rabbit ran past her with a pocket watch. "
    "The Rabbit hurried and Alice ran after it. She followed it down a deep rabbit hole. "
    "She fell slowly past shelves of jars and maps. At the bottom she found a long hall with many doors. "
    "A tiny golden key lay on a glass table. The key opened a little door to a garden. "
    "She drank from a bottle and shrank. Later the Duchess sang to a baby that became a pig. "
    "The Cheshire Cat grinned at her from a tree."
)
TRUE = "Alice followed the White Rabbit down a deep rabbit hole."
SWAPPED = "The Duchess followed the White Rabbit down a deep rabbit hole."
NEGATED = "Alice did not follow the White Rabbit down a deep rabbit hole."
FOREIGN = "Captain Ahab swore to hunt the white whale across every ocean."


def _leaf(scorer, summary: str, candidates: tuple[Candidate, ...] = ()) -> Node:
    spans = tuple(sentence_spans(SOURCE_TEXT))
    return Node(id="leaf", key="k", height=0, index=0, role="chunk", adapter=None,
                span=Span(0, len(SOURCE_TEXT)), children=(), summary=summary,
                sentences=leaf_evidence(scorer, summary, SOURCE_TEXT, spans, 3, 0.25),
                source_sentences=spans, candidates=candidates)


def _task(node: Node, request, key: str = "r") -> ReportTask:
    return ReportTask(key=key, request=request, node=node, children=(), text=SOURCE_TEXT)


# The critique's verdicts


def test_each_summary_sentence_is_verified_beside_its_best_evidence_link(evidence_scorer):
    node = _leaf(evidence_scorer, f"{TRUE} {FOREIGN}")
    _, sentences, closest = critique_parts(node.sentences, node_material(node, (), SOURCE_TEXT))
    assert sentences == [TRUE, FOREIGN]
    assert closest[0] == "She followed it down a deep rabbit hole."
    user = render_messages(verify_prompt(sentences[0], closest[0]))[1]["content"]
    assert f"Closest source sentence: {closest[0]}\n\nSummary sentence: {TRUE}" in user


def test_verdicts_are_the_most_likely_for_sample_0_and_seeded_draws_otherwise():
    distributions = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]]
    assert choose(distributions, 0) == ["SUPPORTED", "UNSUPPORTED", "SUPPORTED"]
    assert choose(distributions, 3) == choose(distributions, 3)
    drawn = {tuple(choose(distributions, sample)) for sample in range(1, 30)}
    assert drawn != {tuple(choose(distributions, 0))}


def test_a_verdict_critique_is_read_back_by_the_critique_parser():
    text = verdict_critique(["SUPPORTED", "ENTITY", "SUPPORTED", "CONTRADICTED"])
    assert [(i.kind, i.number) for i in parse_items(text)] == [("entity", 2), ("contradicted", 4)]
    assert verdict_critique(["SUPPORTED"]) == ""


def test_verdict_distributions_sum_to_one_per_sentence_and_need_distinct_first_tokens(tiny_model_dir):
    runtime = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none", device="cpu"))
    distributions = verdict_distributions(runtime, [verify_prompt(TRUE, "She followed it down a hole."),
                                                    verify_prompt(FOREIGN, "")])
    assert len(distributions) == 2
    assert all(len(d) == 4 and abs(sum(d) - 1) < 1e-5 for d in distributions)
    clashing = MagicMock(encode=lambda word, add_special_tokens: [7 if word.endswith("ED") else 9])
    with pytest.raises(ModelError, match="same token"):
        verdict_token_ids(clashing)


# The critique parser


def test_only_lines_of_the_prompted_forms_are_parsed():
    text = ('Here are the problems:\nUNSUPPORTED: "Alice owns a cat." - the source never says so\n'
            "1. ENTITY: “The Duchess followed.” — wrong name\n" + "CONTRADICTED 2: she grew\n" * 2 +
            "Unsuspored 3 - misspelt but clear\nSupported 1: not a problem at all\n"
            "Something else entirely\nSummary 2: no kind\nNONE")
    items = parse_items(text)
    assert [(i.kind, i.number, i.quote, i.reason) for i in items] == [
        ("unsupported", None, "Alice owns a cat.", "the source never says so"),
        ("entity", None, "The Duchess followed.", "wrong name"),
        ("contradicted", 2, "", "she grew"),
        ("unsupported", 3, "", "misspelt but clear"),
    ]


def test_a_quote_matches_a_sentence_despite_case_and_punctuation_but_not_a_paraphrase():
    sentences = ["Alice followed the White Rabbit down a deep rabbit hole.", "She shrank."]
    assert match_quote("alice followed the white rabbit down a deep rabbit hole", sentences) == 0
    assert match_quote("followed the White Rabbit down a deep rabbit hole", sentences) == 0  # a long part
    assert match_quote("Alice chased a rabbit into a hole.", sentences) is None
    assert match_quote("rabbit", sentences) is None


def test_verdicts_become_items_on_the_sentences_not_judged_supported(evidence_scorer):
    node = _leaf(evidence_scorer, f"{TRUE} She drank from a bottle and grew.")
    (item,) = verdict_items(["SUPPORTED", "CONTRADICTED"], node)
    assert (item.kind, item.origin, item.sentence) == ("contradicted", "model", 1)
    assert item.quote == node.sentences[1].text  # the node's own words
    assert item.spans == node.sentences[1].source_spans and "opposite" in item.explanation


# Evidence-derived critique items


@pytest.mark.parametrize(("planted", "kind"), [(SWAPPED, "entity"), (NEGATED, "contradicted"),
                                               (FOREIGN, "unsupported")])
def test_evidence_flags_each_kind_of_planted_sentence_and_not_the_true_one(evidence_scorer, planted, kind):
    node = _leaf(evidence_scorer, f"{TRUE} {planted}")
    report = critique_report(_task(node, CritiqueRequest()), ["SUPPORTED"] * 2,
                                            evidence_scorer)
    about = {(item.kind, item.sentence) for item in report.items if item.origin == "evidence"}
    assert (kind, 1) in about
    assert not any(sentence == 0 for k, sentence in about if k != "omission")


def test_salient_child_sentences_no_summary_sentence_uses_are_omissions(evidence_scorer):
    node = _leaf(evidence_scorer, TRUE)
    report = critique_report(_task(node, CritiqueRequest()), ["SUPPORTED"])
    omissions = [item for item in report.items if item.kind == "omission"]
    assert omissions and all(item.origin == "evidence" for item in omissions)
    assert any("Duchess" in item.quote or "Cheshire" in item.quote for item in omissions)


# Report builders


def test_the_evidence_report_is_the_node_sentences_with_their_supports_resolved(evidence_scorer):
    node = _leaf(evidence_scorer, f"{TRUE} {FOREIGN}")
    report = evidence_report(node, (), SOURCE_TEXT)
    assert [s.text for s in report.sentences] == [s.text for s in node.sentences]
    assert [s.unsupported for s in report.sentences] == [s.unsupported for s in node.sentences]
    assert report.unsupported == sum(s.unsupported for s in node.sentences) >= 1
    for sentence, original in zip(report.sentences, node.sentences, strict=True):
        assert [(s.sentence, s.score) for s in sentence.supports] == [(ln.sentence, ln.score)
                                                                       for ln in original.links]
        for support in sentence.supports:
            (span,) = support.source_spans
            assert SOURCE_TEXT[span.start : span.end] == support.text


def test_compare_aligns_shared_sentences_and_shows_claims_only_one_side_makes(evidence_scorer):
    chosen = _leaf(evidence_scorer, f"{TRUE} She drank from a bottle and shrank.")
    other = _leaf(evidence_scorer, f"She drank from a bottle and shrank. {FOREIGN}")
    node = msgspec.structs.replace(chosen, candidates=(
        Candidate(summary=other.summary, sentences=other.sentences, source="sample:1"),))
    report = compare_report(evidence_scorer, _task(node, CompareRequest(a=-1, b=0)))
    assert (report.a.label, report.b.label) == ("chosen", "candidate:0")
    pairs = {(p.a, p.b) for p in report.aligned}
    assert (1, 0) in pairs  # the shared sentence
    assert (0, None) in pairs and (None, 1) in pairs  # a claim only in a, one only in b
    assert report.b.unsupported >= 1 and report.a.mean_support > report.b.mean_support


def test_compare_scores_a_summary_passed_in_the_request(evidence_scorer):
    node = _leaf(evidence_scorer, TRUE)
    report = compare_report(evidence_scorer, _task(node, CompareRequest(a=-1, b=FOREIGN)))
    assert report.b.label == "request" and report.b.sentences[0].unsupported
    assert align(evidence_scorer, report.a.sentences, ()) == tuple(
        msgspec.convert({"a": i, "b": None, "similarity": 0.0}, type(report.aligned[0]))
        for i in range(len(report.a.sentences)))


def test_an_evidence_report_can_be_about_a_candidate(evidence_scorer):
    """Evaluators see the same report for either side, so no button tells which one was chosen."""
    foreign = _leaf(evidence_scorer, FOREIGN)
    candidate = Candidate(summary=FOREIGN, sentences=foreign.sentences, source="sample:1")
    node = _leaf(evidence_scorer, TRUE, candidates=(candidate,))
    no_generation = MagicMock(spec=["adapter_for"])
    tasks = [_task(node, EvidenceRequest(summary=0))]
    (report,) = build_reports(no_generation, evidence_scorer, tasks)
    assert report.summary == FOREIGN and report.unsupported == 1


@pytest.mark.parametrize("request_", [CompareRequest(a=-1, b=3), CompareRequest(a=-1, b=-1),
                                      CritiqueRequest(summary=0), EvidenceRequest(summary=0)])
def test_requests_that_cannot_apply_to_the_node_are_refused(evidence_scorer, request_):
    with pytest.raises(InvalidReportRequest):
        check_request(_leaf(evidence_scorer, TRUE), request_)


# The service: batching and caching in the model worker's pass

KEYS = "alice:a-secret:summarize,bob:b-secret:summarize,eve:e-secret:evaluate"
ALICE = {"Authorization": "Bearer a-secret"}
BOB = {"Authorization": "Bearer b-secret"}
EVE = {"Authorization": "Bearer e-secret"}
STORY = "\n\n".join(f"Part {i}. Alice followed the Rabbit into the hall and found a golden key."
                    for i in range(6))
OPTIONS = {"chunk_tokens": 40, "summary_tokens": 8, "evaluation": True}


@pytest.fixture(scope="module")
def engine(tmp_path_factory, evidence_scorer):
    """The tiny model with a window long enough for the helper prompts."""
    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-4k"), max_positions=2048)
    return ModelEngine(load_runtime(ModelSpec(base=str(directory), quantization="none")), evidence_scorer)


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'reports.db'}")


@pytest.fixture
def client(engine, store):
    settings = ServiceSettings(api_keys=parse_api_keys(KEYS), max_body_bytes=50_000)
    with TestClient(create_app(settings, engine=engine, store=store)) as client:
        yield client


@pytest.fixture
def verifications(monkeypatch) -> list[int]:
    """Sizes (sentences judged) of the helper's verdict_distributions calls."""
    calls: list[int] = []
    real = verify_module.verdict_distributions

    def spy(runtime, prompts, *args, **kwargs):
        calls.append(len(prompts))
        return real(runtime, prompts, *args, **kwargs)

    monkeypatch.setattr(verify_module, "verdict_distributions", spy)
    return calls


def _finished_job(client) -> tuple[str, dict]:
    job_id = client.post("/v1/summaries", json={"text": STORY, "title": "Alice", "options": OPTIONS},
                         headers=ALICE).json()["id"]
    deadline = time.time() + 60
    while client.get(f"/v1/summaries/{job_id}", headers=ALICE).json()["status"] != "done":
        assert time.time() < deadline, "job did not finish"
        time.sleep(0.1)
    return job_id, client.get(f"/v1/summaries/{job_id}/tree", headers=ALICE).json()


def _reports_url(job_id: str, node_id: str) -> str:
    return f"/v1/summaries/{job_id}/nodes/{node_id}/reports"


def _wait_report(client, url: str, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while (report := client.get(url, headers=EVE).json())["status"] == "pending":
        assert time.time() < deadline, "report stayed pending"
        time.sleep(0.1)
    return report


def test_pending_critiques_of_several_nodes_are_judged_in_one_batched_call(engine, store, client,
                                                                           verifications):
    job_id, tree = _finished_job(client)
    client.app.state.worker.stop()  # the pass below is the only one
    service = ReportService(store)
    evaluator = Principal(name="eve", scopes=frozenset({"evaluate"}))
    leaves = tree["heights"][0][:3]
    for node_id in leaves:
        report, status = service.create(job_id, node_id, CritiqueRequest(), evaluator, engine)
        assert (status, report.status) == (202, "pending")
    assert len(finish_pending_reports(store, engine, "local")) == 3
    nodes = {n["id"]: n for n in tree["nodes"]}
    assert verifications == [sum(len(nodes[node_id]["sentences"]) for node_id in leaves)]
    done = [store.reports.reports_of_node(job_id, node_id)[0] for node_id in leaves]
    assert all(r.status == "done" and r.body.items is not None for r in done)


def test_a_calibrated_helper_flags_the_sentences_under_its_threshold(engine, store, client, monkeypatch):
    job_id, tree = _finished_job(client)
    client.app.state.worker.stop()
    everything = VerifyCalibration(flag_below=1.01, summaries=1, sentences=1, recall=1.0, precision=1.0)
    monkeypatch.setattr(engine.runtime, "adapter_set",
                        dataclasses.replace(engine.runtime.adapter_set, verify_calibration=everything))
    leaf = tree["heights"][0][0]
    service = ReportService(store)
    service.create(job_id, leaf, CritiqueRequest(), Principal(name="eve", scopes=frozenset({"evaluate"})),
                   engine)
    assert len(finish_pending_reports(store, engine, "local")) == 1
    body = store.reports.reports_of_node(job_id, leaf)[0].body
    node = next(n for n in tree["nodes"] if n["id"] == leaf)
    flagged = sorted(i.sentence for i in body.items if i.origin == "model")
    assert flagged == list(range(len(node["sentences"])))


def test_the_evidence_report_is_built_at_once_and_asking_again_returns_it(client):
    job_id, tree = _finished_job(client)
    root = tree["root"]
    first = client.post(_reports_url(job_id, root), json={"kind": "evidence"}, headers=EVE)
    assert first.status_code == 201, first.text
    report = first.json()
    assert report["status"] == "done" and first.headers["location"].endswith(report["id"])
    node = next(n for n in tree["nodes"] if n["id"] == root)
    assert [s["text"] for s in report["body"]["sentences"]] == [s["text"] for s in node["sentences"]]
    again = client.post(_reports_url(job_id, root), json={"kind": "evidence"}, headers=EVE)
    assert again.status_code == 200 and again.json()["id"] == report["id"]


def test_a_critique_is_made_by_the_worker_once_however_often_it_is_asked_for(client, verifications):
    job_id, tree = _finished_job(client)
    url = _reports_url(job_id, tree["root"])
    accepted = client.post(url, json={"kind": "critique"}, headers=EVE)
    assert accepted.status_code == 202, accepted.text
    done = _wait_report(client, f"{url}/{accepted.json()['id']}")
    assert done["status"] == "done" and done["body"]["kind"] == "critique"
    again = client.post(url, json={"kind": "critique"}, headers=EVE)
    assert again.status_code == 200 and again.json()["id"] == done["id"]
    assert len(verifications) == 1
    listed = client.get(url, headers=ALICE).json()  # the job's owner may read its reports
    assert [r["id"] for r in listed] == [done["id"]]
    assert client.get(url, params={"kind": "qa"}, headers=EVE).json() == []


def test_a_question_is_answered_with_spans_of_the_node_source(client):
    job_id, tree = _finished_job(client)
    leaf = tree["heights"][0][0]
    url = _reports_url(job_id, leaf)
    accepted = client.post(url, json={"kind": "qa", "question": "What did Alice find?"}, headers=EVE)
    assert accepted.status_code == 202
    answer = _wait_report(client, f"{url}/{accepted.json()['id']}")["body"]
    node = next(n for n in tree["nodes"] if n["id"] == leaf)
    start, end = node["span"]
    for citation in answer["citations"]:
        assert start <= citation["span"][0] < citation["span"][1] <= end
        assert STORY[citation["span"][0] : citation["span"][1]] == citation["text"]


@pytest.mark.parametrize(("body", "status"), [
    ({"kind": "summary"}, 400),
    ({"kind": "qa"}, 400),
    ({"kind": "qa", "question": ""}, 400),
    ({"kind": "evidence", "extra": 1}, 400),
    ({"kind": "compare", "a": -1, "b": 5}, 422),
    ({"kind": "compare", "a": -1, "b": -1}, 422),
    ({"kind": "critique", "summary": 2}, 422),
])
def test_bad_report_requests_get_a_problem_and_store_nothing(client, store, body, status):
    job_id, tree = _finished_job(client)
    before = store.counts()
    response = client.post(_reports_url(job_id, tree["root"]), json=body, headers=EVE)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert store.counts() == before


def test_unknown_jobs_nodes_and_reports_are_404(client):
    job_id, tree = _finished_job(client)
    assert client.post(_reports_url("nope", "x"), json={"kind": "evidence"}, headers=EVE).status_code == 404
    assert client.post(_reports_url(job_id, "x"), json={"kind": "evidence"}, headers=EVE).status_code == 404
    assert client.get(_reports_url(job_id, "x"), headers=EVE).status_code == 404
    assert client.get(f"{_reports_url(job_id, tree['root'])}/nope", headers=EVE).status_code == 404
    assert client.get(_reports_url(job_id, tree["root"]), headers=BOB).status_code == 404  # not Bob's job


def test_reports_need_the_evaluate_scope_to_create(client):
    job_id, tree = _finished_job(client)
    response = client.post(_reports_url(job_id, tree["root"]), json={"kind": "evidence"}, headers=ALICE)
    assert response.status_code == 403


def test_a_report_on_an_unfinished_job_is_409(client, store):
    job_id, tree = _finished_job(client)
    client.app.state.worker.stop()  # or it would pick the job up again
    store.jobs.update_job(job_id, status="running")
    response = client.post(_reports_url(job_id, tree["root"]), json={"kind": "evidence"}, headers=EVE)
    assert response.status_code == 409 and "running" in response.json()["detail"]


def test_a_sentence_the_inputs_support_better_with_another_name_or_polarity_is_flagged(evidence_scorer):
    node = _leaf(evidence_scorer, f"{TRUE} {SWAPPED} {NEGATED}")
    texts = [m.text for m in node_material(node, (), SOURCE_TEXT)]
    names = known_names([*texts, *(s.text for s in node.sentences)])
    found = counterfactual_items(evidence_scorer, node, texts, names)
    items = {(item.sentence, item.kind): item for item in found}
    assert "with Alice for Duchess" in items[(1, "entity")].explanation
    assert (2, "contradicted") in items
    assert not any(sentence == 0 for sentence, _ in items)
