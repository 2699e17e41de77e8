"""The critique helper's verdicts: each summary sentence judged against its closest source sentence, the
verdict read off the helper model's next-token distribution over the verdict words' first tokens.

Scoring, not generating: every sentence gets one of VERDICTS in one forward pass, the base model included
(left to generate, the base 135M helper wrote no line the critique parser accepts). Sample 0 takes each
sentence's most likely verdict, or flags it where a trained helper's calibrated threshold on P(SUPPORTED)
says so (`verify_calibration`); sample k draws each from its distribution with seed k: the alternatives
evaluators compare.
"""

import random
from collections.abc import Sequence

import torch

from recursum.schemas.reports import CritiqueItem, CritiqueKind
from recursum.schemas.tree import Node
from recursum.service.engine.errors import ModelError
from recursum.service.engine.helpers.verify_calibration import VerifyCalibration
from recursum.service.engine.models.runtime import ModelRuntime
from recursum.service.engine.pipeline.generate import fit_prompt
from recursum.service.engine.pipeline.prompts import (
    SUPPORTED,
    VERDICTS,
    HelperPrompt,
    critique_line,
    verify_prompt,
)

VERIFY_BATCH = 16
MODEL_SEVERITY = 0.5  # the helper model's word alone: below what evidence of the same kind says
FLAGS: dict[str, tuple[CritiqueKind, str]] = {  # each verdict but SUPPORTED: its item's kind, and why
    "UNSUPPORTED": ("unsupported", "the source never says this"),
    "CONTRADICTED": ("contradicted", "the source says the opposite"),
    "ENTITY": ("entity", "the source gives this to another character"),
}


def verdict_token_ids(tokenizer) -> list[int]:
    """Each verdict word's first token; they must differ for the next token to tell the verdicts apart."""
    firsts = [tokenizer.encode(word, add_special_tokens=False)[0] for word in VERDICTS]
    if len(set(firsts)) != len(firsts):
        raise ModelError(f"this tokenizer starts two of the verdict words {VERDICTS} with the same token")
    return firsts


def verdict_distributions(runtime: ModelRuntime, prompts: Sequence[HelperPrompt],
                          batch_size: int = VERIFY_BATCH) -> list[list[float]]:
    """Per prompt, the helper's probabilities of VERDICTS (renormalized over them), in prompt order."""
    if not prompts:
        return []
    tokenizer = runtime.tokenizer
    firsts = torch.tensor(verdict_token_ids(tokenizer), device=runtime.device)
    ids = [fit_prompt(runtime, prompt, 1)[0] for prompt in prompts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    distributions: list[list[float]] = [[] for _ in ids]
    with runtime.using(runtime.adapter_for("helper")), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            padded = tokenizer.pad({"input_ids": [ids[i] for i in batch]}, padding_side="left",
                                   return_tensors="pt")
            attention_mask = padded["attention_mask"].to(runtime.device)
            logits = runtime.model(input_ids=padded["input_ids"].to(runtime.device),
                                   attention_mask=attention_mask,
                                   position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0)).logits
            probabilities = logits[:, -1, firsts].float().softmax(-1)  # (batch, verdicts)
            for row, values in zip(batch, probabilities.tolist(), strict=True):
                distributions[row] = values
    return distributions


def summary_distributions(runtime: ModelRuntime, summaries: Sequence[tuple[Sequence[str], Sequence[str]]]
                          ) -> list[list[list[float]]]:
    """Per summary (its sentences and each one's closest source sentence), per sentence, the helper's
    probabilities of VERDICTS: every sentence of every summary in one `verdict_distributions` call."""
    prompts = [[verify_prompt(s, c) for s, c in zip(sentences, closest, strict=True)]
               for sentences, closest in summaries]
    flat = iter(verdict_distributions(runtime, [p for group in prompts for p in group]))
    return [[next(flat) for _ in group] for group in prompts]


def choose(distributions: Sequence[Sequence[float]], sample: int,
           calibration: VerifyCalibration | None = None) -> list[str]:
    """Sample 0: each sentence's most likely verdict or, calibrated, its likeliest other verdict when
    P(SUPPORTED) is under the helper's threshold (`verify_calibration`); sample k: one drawn per
    sentence with seed k."""
    rng = random.Random(sample)
    if sample != 0:
        return [rng.choices(VERDICTS, weights=values)[0] for values in distributions]
    if calibration is None:
        return [VERDICTS[max(range(len(values)), key=values.__getitem__)] for values in distributions]
    return [SUPPORTED if values[0] >= calibration.flag_below
            else VERDICTS[max(range(1, len(values)), key=values.__getitem__)] for values in distributions]


def verdict_critique(verdicts: Sequence[str]) -> str:
    """The verdicts as critique lines, `KIND <n>: <reason>` for each sentence not judged SUPPORTED."""
    return "\n".join(critique_line(word, FLAGS[word][1], sentence=i) for i, word in enumerate(verdicts)
                     if word != SUPPORTED)


def verdict_items(verdicts: Sequence[str], node: Node) -> list[CritiqueItem]:
    """The verdicts as critique items on the node's sentences, each carrying the sentence verbatim."""
    return [CritiqueItem(kind=FLAGS[word][0], origin="model", quote=sentence.text, sentence=i,
                         links=sentence.links, spans=sentence.source_spans, severity=MODEL_SEVERITY,
                         explanation=f"the helper model judges it {word} beside its closest source "
                                     f"sentence: {FLAGS[word][1]}")
            for i, (word, sentence) in enumerate(zip(verdicts, node.sentences, strict=True))
            if word != SUPPORTED]
