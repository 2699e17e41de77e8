"""The embedded default model on a real book excerpt (slow: pulls SmolLM2 once, ~1 minute)."""

import pytest
from conftest import shared_data

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.commentary import is_meta_commentary
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.estimate import estimate_work
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.roster import roster, summary_names
from recursum.service.engine.pipeline.tree import TreeConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def excerpt() -> str:
    return shared_data("books/alice_in_wonderland.txt").read_text()[:7000]


@pytest.fixture(scope="module")
def tree(evidence_scorer, excerpt):
    pull_default_model()
    text = excerpt
    runtime = load_runtime(ModelSpec(quantization="nf4"))
    config = TreeConfig(chunk_tokens=400, merge_tokens=300, summary_tokens=48, batch_size=4)
    return Summarizer(runtime, evidence_scorer, config).summarize(make_document(text, "Alice"))


def test_the_root_summary_is_real_text(tree):
    assert len(tree.root_node.summary.split()) >= 5
    assert tree.model.quantization == "nf4"
    assert len(tree.heights) >= 2


def test_the_root_names_a_leading_character_and_never_talks_about_the_text(tree, excerpt):
    root = tree.root_node
    leading, names = roster(excerpt, 3), summary_names(root.summary, frozenset(roster(excerpt)))
    assert set(names) & set(leading), (leading, root.summary)
    assert not [s.text for s in root.sentences if is_meta_commentary(s.text)]


def test_every_evidence_span_lies_inside_the_document(tree):
    spans = [span for node in tree.nodes.values() for s in node.sentences for span in s.source_spans]
    assert spans
    assert all(0 <= span.start < span.end <= tree.text_length for span in spans)


def test_every_node_spans_exactly_its_children(tree):
    merges = [node for node in tree.nodes.values() if node.children]
    assert merges
    for node in merges:
        children = [tree.nodes[c] for c in node.children]
        assert node.span.start == children[0].span.start
        assert node.span.end == children[-1].span.end
        assert all(a.span.end == b.span.start for a, b in zip(children, children[1:], strict=False))


def test_the_estimate_counts_the_next_excerpts_tree_exactly_and_its_tokens_within_ten_percent(
        tree, evidence_scorer):
    """As the service estimates: the summary length measured on earlier work (the tree above), the shape
    and tokens of a document not yet summarized."""
    generated = [node for node in tree.nodes.values() if not node.composed]
    fill = sum(node.generated_tokens for node in generated) / (len(generated) * tree.config.summary_tokens)
    text = shared_data("books/alice_in_wonderland.txt").read_text()[7000:14000]
    estimate = estimate_work(text, tree.config, fill * tree.config.summary_tokens)
    runtime = load_runtime(ModelSpec(quantization="nf4"))
    real = Summarizer(runtime, evidence_scorer, tree.config).summarize(make_document(text, "Alice"))
    assert estimate.chunks == len(real.chunks)
    assert estimate.nodes == [len(level) for level in real.heights]
    made = [node for node in real.nodes.values() if not node.composed]
    prompt, written = sum(n.prompt_tokens for n in made), sum(n.generated_tokens for n in made)
    assert estimate.prompt_tokens == pytest.approx(prompt, rel=0.1)
    assert estimate.generated_tokens == pytest.approx(written, rel=0.1)
