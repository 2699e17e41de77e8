"""Meta-commentary: sentences about the text, the passage, the summary or its sentences, not the story.

A small instruct model asked to summarize often describes the task instead ("The story unfolds in two to
four sentences", "Combining these sentences gives..."). Such a sentence says nothing about who did what, so
the quality bench counts it per height and the recursion can drop it. Cues are words for the text itself
and phrases that talk about a story rather than tell it; character names or events never match.
"""

import re

# Words that name the text or the act of summarizing it: a sentence using them is about the document.
_TEXT_WORDS = re.compile(
    r"\b(?:passages?|excerpts?|summar(?:y|ies|ize[sd]?|izing|ise[sd]?|ising)|sentences?|paragraphs?|"
    r"the text|this text|the reader|readers|the author|chapters?|narrative|storyline|plot points?)\b",
    re.IGNORECASE)
# "The story unfolds / explores / is about ...": describing a story instead of telling it.
_STORY_ABOUT = re.compile(
    r"\b(?:the|this) (?:story|tale|book|novel|scene)\s+(?:unfolds|begins|opens|ends|explores|describes|"
    r"highlights|depicts|portrays|revolves|focuses|centers|centres|tells|shows|is about|is a|follows|"
    r"presents|introduces|captures|illustrates|emphasizes|emphasises|conveys)\b",
    re.IGNORECASE)


# "A tale of ...", "This is a short story of ...": naming the genre instead of telling what happens.
_STORY_IS = re.compile(
    r"^(?:a|the) (?:\w+ )?(?:story|tale) (?:of|about)\b|\b(?:this|it) is (?:a|the) (?:\w+ )?(?:story|tale)\b",
    re.IGNORECASE)


def is_meta_commentary(sentence: str) -> bool:
    """Whether `sentence` talks about the text or the summarizing rather than the story's events."""
    text = sentence.strip()
    return bool(_TEXT_WORDS.search(text) or _STORY_ABOUT.search(text) or _STORY_IS.search(text))
