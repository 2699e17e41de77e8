"""Critique examples become the per-sentence verifications the helper is served and trained on."""

import msgspec
import pytest

from recursum.service.engine.pipeline.prompts import (
    critique_input,
    critique_sentences,
    task_prompt,
    verify_prompt,
)
from recursum.training.critique_data import (
    sentence_verdicts,
    verification_comparisons,
    verification_demonstrations,
)
from recursum.training.datasets import Comparison, Demonstration, now

SENTENCES = ["Alice followed the Rabbit.", "The Duchess fell down a hole.", "She found a golden key."]
CLOSEST = ["Alice ran after the Rabbit.", "Alice fell down a deep hole.", "A tiny golden key lay there."]
INPUT = critique_input("Alice ran after the Rabbit. Alice fell down a deep hole.", SENTENCES, CLOSEST)


def _comparison(first: str, second: str, task: str = "helper:critique") -> Comparison:
    return Comparison(id="c", task=task, height=0, input=INPUT, group="alice", candidates=(first, second),
                      preferred=1, evaluator="recursum:eve", created=now())


def test_a_critique_gives_each_sentence_the_kind_of_its_first_item_or_supported():
    critique = ('ENTITY 2: the Duchess never fell\nUNSUPPORTED 2: again\n'
                'OMISSION: "Alice ran after the Rabbit." - needed\n'
                'CONTRADICTED: "She found a golden key." - no')
    assert sentence_verdicts(critique, SENTENCES) == ["SUPPORTED", "ENTITY", "CONTRADICTED"]
    assert sentence_verdicts("No problems found.", SENTENCES) == ["SUPPORTED"] * 3


def test_a_critique_comparison_becomes_one_verification_per_sentence_judged_differently():
    (verification,) = verification_comparisons([_comparison("No problems found.", "ENTITY 2: wrong name")])
    assert verification.task == "helper:verify" and verification.id == "c:1"
    assert verification.candidates == ("SUPPORTED", "ENTITY") and verification.preferred == 1
    assert task_prompt(verification.task, verification.input) == verify_prompt(SENTENCES[1], CLOSEST[1])
    assert verification_comparisons([_comparison("ENTITY 2: x", "ENTITY 2: y")]) == []


def test_other_tasks_pass_unchanged_and_a_critique_without_its_summary_section_is_an_error():
    chunk = _comparison("Alice fell.", "Alice flew.", task="chunk")
    assert verification_comparisons([chunk]) == [chunk]
    broken = msgspec.structs.replace(_comparison("a", "b"), input="a story with no summary section")
    with pytest.raises(ValueError, match="not a critique input"):
        verification_comparisons([broken])


def test_a_reference_critique_becomes_one_demonstration_per_sentence():
    demo = Demonstration(task="helper:critique", height=0, input=INPUT, group="alice",
                         output="ENTITY 2: another character did this", source="simulated:test")
    verdicts = verification_demonstrations([demo])
    assert [d.output for d in verdicts] == ["SUPPORTED", "ENTITY", "SUPPORTED"]
    assert all(d.task == "helper:verify" for d in verdicts)
    assert critique_sentences(INPUT) == (SENTENCES, CLOSEST)
