import dataclasses

import msgspec
import pytest

from recursum.schemas.events import HeightDone, HeightStarted
from recursum.schemas.tree import SOURCE, Node, Span
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline import refill
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.estimate import estimate_work
from recursum.service.engine.pipeline.events import NodeDone
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache
from recursum.service.engine.pipeline.prompts import render_messages
from recursum.service.engine.pipeline.recursion import Cancelled, Summarizer
from recursum.service.engine.pipeline.results import RunStats
from recursum.service.engine.pipeline.scheduler import Scheduler
from recursum.service.engine.pipeline.tree import TreeConfig

CONFIG = TreeConfig(chunk_tokens=60, merge_tokens=64, max_children=3, summary_tokens=12,
                    batch_size=4, root_words=0)  # merges all the way up
STORY = "\n\n".join(
    f"Chapter {i}. Alice met the Rabbit near the river and asked about the Queen's garden. "
    f"The Rabbit looked at his watch number {i} and ran away through the trees."
    for i in range(10)
)


@pytest.fixture(scope="module")
def runtime(tiny_model_dir):
    return load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none"))


@pytest.fixture(scope="module")
def tree(runtime, evidence_scorer):
    return Summarizer(runtime, evidence_scorer, CONFIG).summarize(make_document(STORY))


def _spans_union(tree, node: Node) -> Span:
    children = [tree.nodes[c] for c in node.children]
    for left, right in zip(children, children[1:], strict=False):
        assert left.span.end == right.span.start
    return Span(children[0].span.start, children[-1].span.end)


def test_a_long_document_becomes_several_heights_with_one_root(tree):
    assert len(tree.heights[0]) == len(tree.chunks) > CONFIG.max_children
    assert len(tree.heights) >= 3
    assert tree.heights[-1] == [tree.root]
    assert all(len(level) < len(below) for below, level in zip(tree.heights, tree.heights[1:], strict=False))


def test_leaves_are_the_chunks_and_every_merge_spans_its_children(tree):
    assert tree.chunks and len(tree.heights) >= 2, "the story should need at least one merge"
    for chunk, node_id in zip(tree.chunks, tree.heights[0], strict=True):
        assert tree.nodes[node_id].span == chunk.span
        assert tree.nodes[node_id].role == "chunk"
    for level in tree.heights[1:]:
        for node_id in level:
            node = tree.nodes[node_id]
            assert node.role == "merge"
            assert len(node.children) >= 2
            assert node.span == _spans_union(tree, node)
    assert tree.root_node.span == Span(0, tree.text_length)


def test_evidence_composes_down_to_spans_of_the_original_text(tree):
    spans = [(node, span) for node in tree.nodes.values() for sentence in node.sentences
             for span in sentence.source_spans]
    links = [(node, link) for node in tree.nodes.values() for sentence in node.sentences
             for link in sentence.links]
    assert spans and links
    assert {link.target == SOURCE for _, link in links} == {True, False}  # to the source and to children
    for node, span in spans:
        assert node.span.start <= span.start < span.end <= node.span.end
    for node, link in links:
        if link.target == SOURCE:
            assert link.sentence < len(node.source_sentences)
        else:
            assert link.target in node.children
            assert link.sentence < len(tree.nodes[link.target].sentences)


def test_a_second_run_reuses_every_node_from_the_cache(runtime, evidence_scorer):
    cache = MemoryNodeCache()
    document = make_document(STORY)
    first_stats, second_stats = RunStats(), RunStats()
    first = Summarizer(runtime, evidence_scorer, CONFIG, cache).summarize(document, stats=first_stats)
    second = Summarizer(runtime, evidence_scorer, CONFIG, cache).summarize(document, stats=second_stats)
    assert len(second.nodes) > 1
    assert second_stats.cache_hits == first_stats.cache_misses > 0
    assert all(n.cached for n in second.nodes.values())
    assert second_stats.generation.sequences == 0
    assert [n.key for n in second.nodes.values()] == [n.key for n in first.nodes.values()]


def test_editing_the_end_recomputes_only_the_last_leaf_and_its_ancestors(runtime, evidence_scorer):
    cache = MemoryNodeCache()
    original = Summarizer(runtime, evidence_scorer, CONFIG, cache).summarize(make_document(STORY))
    stats = RunStats()
    edited = Summarizer(runtime, evidence_scorer, CONFIG, cache).summarize(
        make_document(STORY + " The end came."), stats=stats)
    assert len(edited.chunks) == len(original.chunks)
    generated = {n.id for n in edited.nodes.values() if not n.cached}
    chain, node_id = set(), edited.root
    while True:
        chain.add(node_id)
        children = edited.nodes[node_id].children
        if not children:
            break
        node_id = children[-1]
    assert edited.heights[0][-1] in generated, "the edited last leaf is generated again"
    assert generated <= chain
    assert stats.cache_misses <= len(edited.heights)


def test_content_address_changes_with_generation_settings(runtime, evidence_scorer):
    document = make_document("Alice fell down the hole. She landed softly.")
    default = Summarizer(runtime, evidence_scorer, CONFIG).summarize(document)
    longer = Summarizer(runtime, evidence_scorer,
                        TreeConfig(chunk_tokens=60, summary_tokens=13)).summarize(document)
    assert default.root_node.key != longer.root_node.key


def test_a_one_chunk_document_is_its_own_root(runtime, evidence_scorer):
    tree = Summarizer(runtime, evidence_scorer, CONFIG).summarize(make_document("Alice slept."))
    assert tree.heights == [[tree.root]]


def test_preceding_context_keeps_each_height_a_single_pass(runtime, evidence_scorer):
    config = TreeConfig(chunk_tokens=60, merge_tokens=64, max_children=3, summary_tokens=8,
                        batch_size=64, context="preceding-text", context_tokens=30, root_words=0, resample=0)
    stats = RunStats()
    tree = Summarizer(runtime, evidence_scorer, config).summarize(make_document(STORY), stats=stats)
    assert stats.generation.batches == len(tree.heights)


def test_inputs_that_overflow_the_model_window_are_truncated_not_refused(runtime, evidence_scorer):
    config = TreeConfig(chunk_tokens=2000, summary_tokens=12)
    document = make_document(" ".join(["The Rabbit ran past the Hatter's house."] * 200))
    tree = Summarizer(runtime, evidence_scorer, config).summarize(document)
    leaf = tree.nodes[tree.heights[0][0]]
    assert leaf.truncated
    assert leaf.prompt_tokens + config.summary_tokens <= runtime.context_window


def test_progress_events_announce_each_height_and_node(runtime, evidence_scorer):
    events = []
    tree = Summarizer(runtime, evidence_scorer, CONFIG).summarize(make_document(STORY),
                                                                  on_event=events.append)
    started = [e.height for e in events if isinstance(e, HeightStarted)]
    done = [e.height for e in events if isinstance(e, HeightDone)]
    assert started == done == list(range(len(tree.heights)))
    assert sum(isinstance(e, NodeDone) for e in events) == len(tree.nodes)


def test_cancelling_stops_the_run(runtime, evidence_scorer):
    with pytest.raises(Cancelled):
        Summarizer(runtime, evidence_scorer, CONFIG).summarize(make_document(STORY),
                                                               should_stop=lambda: True)


def test_merges_take_fan_in_children_and_never_leave_a_lone_child(tree):
    leaves = tree.heights[0]
    assert len(leaves) > CONFIG.max_children, "sizes past the root's fan-in"
    for level, above in zip(tree.heights, tree.heights[1:-1], strict=False):
        children = [child for node_id in above for child in tree.nodes[node_id].children]
        assert children == level
        assert all(2 <= len(tree.nodes[node_id].children) <= CONFIG.max_children + 1 for node_id in above)
    assert len(tree.heights[-2]) <= CONFIG.max_children


def test_no_node_is_ever_empty_and_dropped_sentences_are_recorded(tree):
    # The tiny random model writes noise, so the screen drops most of it and falls back to extracts.
    assert all(node.summary.strip() and node.sentences for node in tree.nodes.values())
    screened = [node for node in tree.nodes.values() if node.dropped]
    assert screened
    assert all(d.reason for node in screened for d in node.dropped)


def test_an_extractive_node_quotes_its_input(tree):
    extractive = [node for node in tree.nodes.values() if node.extractive and node.height == 0]
    assert extractive
    for node in extractive:
        assert all(s.text in STORY for s in node.sentences)


def test_the_screen_can_be_turned_off(runtime, evidence_scorer):
    config = TreeConfig(chunk_tokens=60, merge_tokens=64, max_children=3, summary_tokens=12, screen=False,
                        root_words=0)
    tree = Summarizer(runtime, evidence_scorer, config).summarize(make_document(STORY))
    assert all(not node.dropped and not node.extractive for node in tree.nodes.values())


def _words(tree, level: list[str]) -> int:
    return sum(len(tree.nodes[node_id].summary.split()) for node_id in level)


def test_a_height_that_fits_in_root_words_is_composed_into_the_root(runtime, evidence_scorer):
    config = msgspec.structs.replace(CONFIG, root_words=10_000, max_children=16)
    tree = Summarizer(runtime, evidence_scorer, config).summarize(make_document(STORY))
    root, leaves = tree.root_node, [tree.nodes[i] for i in tree.heights[0]]
    assert len(tree.heights) == 2 and root.composed and not root.generated_tokens
    assert root.summary == "\n\n".join(leaf.summary for leaf in leaves)
    assert root.span == Span(0, tree.text_length)
    below = [(leaf, j) for leaf in leaves for j in range(len(leaf.sentences))]
    assert len(root.sentences) == len(below)
    for sentence, (leaf, j) in zip(root.sentences, below, strict=True):
        assert sentence.text == leaf.sentences[j].text
        assert [(link.target, link.sentence, link.score) for link in sentence.links] == [(leaf.id, j, 1.0)]
        assert sentence.source_spans == leaf.sentences[j].source_spans
        assert sentence.source_support == leaf.sentences[j].source_support


def test_heights_merge_until_they_fit_in_root_words(runtime, evidence_scorer):
    merged = Summarizer(runtime, evidence_scorer, CONFIG).summarize(make_document(STORY))
    fits_after_one_merge = _words(merged, merged.heights[1])
    assert fits_after_one_merge < _words(merged, merged.heights[0])
    config = msgspec.structs.replace(CONFIG, root_words=fits_after_one_merge)
    tree = Summarizer(runtime, evidence_scorer, config).summarize(make_document(STORY))
    assert len(tree.heights) == 3 and tree.root_node.composed
    assert tree.heights[1] == merged.heights[1], "the merges below the composed root are the same nodes"
    assert not any(tree.nodes[i].composed for level in tree.heights[:-1] for i in level)


def test_a_leaf_the_screen_empties_is_resampled_before_it_falls_back_to_an_extract(runtime, evidence_scorer):
    cache, stats = MemoryNodeCache(), RunStats()
    # The composed root generates nothing.
    leaves_only = msgspec.structs.replace(CONFIG, root_words=10_000, max_children=16)
    greedy = Summarizer(runtime, evidence_scorer, msgspec.structs.replace(leaves_only, resample=0), cache)
    emptied = [n for n in greedy.summarize(make_document(STORY)).nodes.values() if n.extractive]
    assert emptied, "the tiny random model's greedy leaves should fail the screen"
    resampled = Summarizer(runtime, evidence_scorer, msgspec.structs.replace(leaves_only, resample=1), cache)
    tree = resampled.summarize(make_document(STORY), stats=stats)
    assert stats.generation.sequences == len(emptied), "one resample per emptied leaf, the rest cached"
    by_index = {node.index: node for node in tree.nodes.values() if node.height == 0}
    for before in emptied:
        after = by_index[before.index]
        sources = {candidate.source for candidate in after.candidates}
        if after.extractive:  # the resample failed too; it stays for evaluators unless it said the same
            assert sources <= {"resample:1"}
        else:  # the resample stands and the refused greedy summary is a candidate, its refusal recorded
            assert sources == {"greedy"} and after.dropped[-len(before.dropped):] == before.dropped


def test_a_failing_batch_fails_only_the_build_that_needed_it(runtime, evidence_scorer, monkeypatch):
    real = refill._RunningBatch.admit
    doomed = Summarizer(runtime, evidence_scorer, CONFIG).start(make_document("The Hatter poured tea. " * 3))
    doomed_keys = doomed.pending_keys()

    def fails_for_doomed(batch, fitted):
        if any(request.key in doomed_keys for request, _, _ in fitted):
            raise RuntimeError("the device fell over")
        return real(batch, fitted)

    monkeypatch.setattr(refill._RunningBatch, "admit", fails_for_doomed)
    spared = Summarizer(runtime, evidence_scorer, msgspec.structs.replace(CONFIG, batch_size=3)).start(
        make_document(STORY))
    scheduler = Scheduler(lambda requests, settings, batch_size, hooks: refill.generate_scheduled(
        runtime, requests, settings, batch_size, None, hooks))
    scheduler.add("doomed", "alice", doomed)
    scheduler.add("spared", "bob", spared)
    failures = {}
    while not spared.done:
        failed = scheduler.run_batch()
        failures |= failed
        for run_id in failed:
            scheduler.remove(run_id)
    assert list(failures) == ["doomed"] and "fell over" in str(failures["doomed"])
    assert spared.tree().root


def test_the_estimate_counts_the_real_trees_nodes_at_every_height(tree):
    estimate = estimate_work(STORY, CONFIG)
    assert estimate.chunks == len(tree.chunks)
    assert estimate.nodes == [len(level) for level in tree.heights]


def test_a_merge_starts_before_its_height_is_complete(runtime, evidence_scorer):
    roles: list[str] = []

    def logged(requests, settings, batch_size, hooks):
        def refilled(free):
            more = hooks.refill(free)
            roles.extend(request.prompt.role for request in more)
            return more
        roles.extend(request.prompt.role for request in requests)
        refill.generate_scheduled(runtime, requests, settings, batch_size, None,
                                    dataclasses.replace(hooks, refill=refilled))

    greedy_only = msgspec.structs.replace(CONFIG, resample=0)  # a resample would wait for a sampled batch
    build = Summarizer(runtime, evidence_scorer, greedy_only).start(make_document(STORY))
    scheduler = Scheduler(logged)
    scheduler.add("story", "alice", build)
    while not build.done:
        assert not scheduler.run_batch()
    assert roles.index("merge") < len(roles) - 1 - roles[::-1].index("chunk")


def test_a_question_is_in_every_generated_node_s_prompt_and_key_apart_from_the_plain_tree(
        runtime, evidence_scorer, monkeypatch):
    question = "What does the Rabbit do with his watch?"
    prompts = []
    generate = refill.generate_scheduled

    def recording(runtime, requests, *args, **kwargs):
        prompts.extend(request.prompt for request in requests)
        return generate(runtime, requests, *args, **kwargs)

    monkeypatch.setattr(refill, "generate_scheduled", recording)
    monkeypatch.setattr("recursum.service.engine.pipeline.recursion.generate_scheduled", recording)
    cache = MemoryNodeCache()
    focused = Summarizer(runtime, evidence_scorer, msgspec.structs.replace(CONFIG, question=question),
                         cache).summarize(make_document(STORY))
    assert {p.role for p in prompts} == {"chunk", "merge"}
    assert all(p.question == question for p in prompts)
    rendered = [render_messages(p)[-1]["content"] for p in prompts]
    assert all(text.endswith(f"question: {question}") for text in rendered)
    plain_stats = RunStats()
    plain = Summarizer(runtime, evidence_scorer, CONFIG, cache).summarize(make_document(STORY),
                                                                        stats=plain_stats)
    assert plain_stats.cache_hits == 0, "a plain tree shares no generation with a question-focused one"
    assert not {n.key for n in plain.nodes.values()} & {n.key for n in focused.nodes.values()}
    assert estimate_work(STORY, msgspec.structs.replace(CONFIG, question=question)).prompt_tokens > \
        estimate_work(STORY, CONFIG).prompt_tokens, "the estimate counts the question in every prompt"


def test_a_generation_key_names_the_role_s_adapter_by_fingerprint(tiny_model_dir, tmp_path):
    from bundles import make_bundle

    from recursum.service.engine.pipeline.prompts import qa_prompt
    from recursum.service.engine.pipeline.recursion import node_key
    from recursum.service.engine.pipeline.results import GenerationSettings

    bare = load_runtime(ModelSpec(base=str(tiny_model_dir), quantization="none"))  # its own: this test loads
    helped = bare.with_bundle(str(make_bundle(tiny_model_dir, tmp_path / "helper", {"helper": 3})))
    prompt, settings = qa_prompt(["Alice ran."], "Who ran?"), GenerationSettings(max_new_tokens=8)
    assert node_key(helped, "helper", prompt, settings) != node_key(bare, "helper", prompt, settings)
    assert node_key(helped, "chunk", prompt, settings) == node_key(bare, "chunk", prompt, settings)
