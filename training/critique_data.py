"""Critique examples as the per-sentence verifications the helper is served (`service.engine.helpers.verify`).

Evaluators compare whole critiques (`helper:critique`: exported by the service, or made by the simulated
labeler). The helper judges one sentence at a time, so a comparison of two critiques becomes one
`helper:verify` comparison per summary sentence the two critiques judge differently, with the same
preference; a reference critique becomes one demonstration per sentence. Other tasks pass unchanged.
"""

from collections.abc import Sequence

import msgspec

from recursum.service.engine.helpers.critique import claim_index, parse_items
from recursum.service.engine.pipeline.prompts import SUPPORTED, critique_sentences, verify_input
from recursum.training.datasets import Comparison, Demonstration

CRITIQUE = "helper:critique"
VERIFY = "helper:verify"


def sentence_verdicts(critique: str, sentences: Sequence[str]) -> list[str]:
    """Per summary sentence, the kind (upper case) of the critique's first item on it, else SUPPORTED."""
    verdicts = [SUPPORTED] * len(sentences)
    for item in parse_items(critique):
        index = claim_index(item, sentences) if item.kind != "omission" else None
        if index is not None and verdicts[index] == SUPPORTED:
            verdicts[index] = item.kind.upper()
    return verdicts


def verification_comparisons(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """`helper:critique` comparisons split into `helper:verify` ones where their verdicts differ."""
    out = []
    for comparison in comparisons:
        if comparison.task != CRITIQUE:
            out.append(comparison)
            continue
        sentences, closest = critique_sentences(comparison.input)
        first, second = (sentence_verdicts(text, sentences) for text in comparison.candidates)
        out.extend(msgspec.structs.replace(comparison, id=f"{comparison.id}:{i}", task=VERIFY,
                                           input=verify_input(sentences[i], closest[i]),
                                           candidates=(first[i], second[i]))
                   for i in range(len(sentences)) if first[i] != second[i])
    return out


def verification_demonstrations(demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
    """`helper:critique` demonstrations split into one `helper:verify` demonstration per sentence."""
    out = []
    for demonstration in demonstrations:
        if demonstration.task != CRITIQUE:
            out.append(demonstration)
            continue
        sentences, closest = critique_sentences(demonstration.input)
        verdicts = sentence_verdicts(demonstration.output, sentences)
        out.extend(msgspec.structs.replace(demonstration, task=VERIFY, input=verify_input(s, c),
                                           output=verdict)
                   for s, c, verdict in zip(sentences, closest, verdicts, strict=True))
    return out
