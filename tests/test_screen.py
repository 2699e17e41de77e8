"""The evidence screen: what a generated summary may keep, and the extractive fallback when nothing stays."""

from recursum.schemas.tree import Sentence
from recursum.service.engine.pipeline.evidence import EvidenceScorer, leaf_evidence
from recursum.service.engine.pipeline.roster import vocabulary
from recursum.service.engine.pipeline.screen import drop_reason, extractive_summary, screen
from recursum.service.engine.pipeline.sentences import sentence_spans

SOURCE = ("Alice followed the White Rabbit down a hole. She fell for a long time and landed in a hall. "
          "The Rabbit hurried away, and Alice found a small golden key on a glass table.")


VOCABULARY = vocabulary(SOURCE)


def _sentence(text: str, support: float = 0.9) -> Sentence:
    return Sentence(text=text, support=support, source_support=support, unsupported=support < 0.25)


def test_a_sentence_about_the_text_is_dropped():
    reason = drop_reason(_sentence("In this passage, we see how sentences combine."), VOCABULARY, 0.25)
    assert reason is not None and reason.startswith("meta-commentary")


def test_a_sentence_naming_someone_the_source_never_names_is_dropped():
    reason = drop_reason(_sentence("Alice meets Gandalf in the hall."), VOCABULARY, 0.25)
    assert reason is not None and "Gandalf" in reason


def test_a_sentence_without_support_down_to_the_source_is_dropped():
    reason = drop_reason(_sentence("Alice finds a key.", support=0.1), VOCABULARY, 0.25)
    assert reason is not None and reason.startswith("unsupported by the source")


def test_a_supported_sentence_about_the_story_stands():
    assert drop_reason(_sentence("Alice follows the Rabbit down a hole."), VOCABULARY, 0.25) is None


def test_the_screen_keeps_what_stands_and_says_why_the_rest_went():
    kept, dropped = screen([_sentence("Alice follows the Rabbit."), _sentence("This summary is short.")],
                           SOURCE, 0.25)
    assert [s.text for s in kept] == ["Alice follows the Rabbit."]
    assert [d.text for d in dropped] == ["This summary is short."]
    assert dropped[0].reason.startswith("meta-commentary")


def test_the_extractive_fallback_keeps_named_sentences_of_the_input_in_reading_order():
    inputs = ["It was late.", "Alice followed the White Rabbit down a hole.", "Nothing moved at all then.",
              "The Rabbit hurried away, and Alice found a small golden key."]
    summary = extractive_summary(inputs, limit=2)
    assert summary == ("Alice followed the White Rabbit down a hole. "
                       "The Rabbit hurried away, and Alice found a small golden key.")


def test_the_extractive_fallback_of_short_inputs_is_never_empty():
    assert extractive_summary(["Run.", "Stop."]) == "Run. Stop."


def test_a_screened_leaf_keeps_source_support(evidence_scorer: EvidenceScorer):
    spans = sentence_spans(SOURCE, 0)
    sentences = leaf_evidence(evidence_scorer, "Alice follows the White Rabbit down a hole. "
                              "The passage is well written.", SOURCE, spans, 3, 0.25)
    kept, dropped = screen(sentences, SOURCE, 0.25)
    assert [s.text for s in kept] == ["Alice follows the White Rabbit down a hole."]
    assert len(dropped) == 1


def test_the_extractive_fallback_passes_over_walls_of_dialogue_when_it_can():
    wall = "“Who are you?” said the Caterpillar to Alice, " + "and she answered at length, " * 20 + "at last."
    summary = extractive_summary([wall, "Alice told the Caterpillar that she had changed size."], limit=1)
    assert summary == "Alice told the Caterpillar that she had changed size."


def test_a_last_sentence_the_length_limit_cut_off_is_dropped():
    sentences = [_sentence("Alice follows the Rabbit."), _sentence("Alice finds a key and then she")]
    kept, dropped = screen(sentences, SOURCE, 0.25)
    assert [s.text for s in kept] == ["Alice follows the Rabbit."]
    assert dropped[0].reason.startswith("unfinished")


def test_a_finished_last_sentence_may_end_in_a_closing_quote():
    kept, _ = screen([_sentence("Alice said, “I am late.”")], SOURCE, 0.25)
    assert len(kept) == 1


def test_an_extract_leaves_out_a_title_page_or_contents_while_story_sentences_remain():
    inputs = ["Alice's Adventures in Wonderland by Lewis Carroll. Contents: Chapter I. Down the Rabbit-Hole.",
              "Alice was beginning to get very tired of sitting by her sister on the bank.",
              "The White Rabbit ran close by her, muttering about the Duchess."]
    extract = extractive_summary(inputs)
    assert "Contents" not in extract and "Alice was beginning" in extract
