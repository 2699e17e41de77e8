"""The meta-commentary detector: sentences about the text or the summarizing, never about the story."""

import pytest

from recursum.service.engine.pipeline.commentary import is_meta_commentary


@pytest.mark.parametrize("sentence", [
    "In this passage, we see how a simple sentence can contain many different meanings.",
    "The story unfolds in two to four sentences, focusing on the main events.",
    "This is a great summary of the story, and it makes it easier for readers to understand.",
    "Using short sentences helps to break up these complex sentences.",
    "The story explores themes of loss and identity.",
    "The excerpt describes a journey.",
    "Combining the paragraphs gives a clearer picture.",
    "A tale of a small town with many secrets, revealed through a little piggy and a caterpillar.",
    "This is a short story of a small village with many secrets.",
])
def test_sentences_about_the_text_are_meta_commentary(sentence):
    assert is_meta_commentary(sentence)


@pytest.mark.parametrize("sentence", [
    "Alice follows the White Rabbit down a hole and lands in a hall of locked doors.",
    "The Caterpillar asks Alice who she is, and she cannot say.",
    "Dr. Jekyll drinks the potion and becomes Mr. Hyde.",
    "The Pigeon accuses Alice of being a serpent after her neck grows long.",
    "Captain Strike tells the crew that the ship will land on Mars.",
    "Alice tells the Caterpillar a story about her day.",
    "The Hatter's tale of the Queen's concert makes Alice laugh.",
])
def test_sentences_that_tell_the_story_are_not(sentence):
    assert not is_meta_commentary(sentence)
