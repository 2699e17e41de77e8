"""Role prompts, shared by inference and training: both must format inputs exactly alike."""

import functools
import hashlib
import re
from typing import Literal

import msgspec

from recursum.schemas.tree import Role
from recursum.service.engine.pipeline.roster import roster

SYSTEM = "You summarize stories faithfully, using only facts stated in the text."


CAST_SIZE = 6  # names a prompt lists: a chunk's or a merge's leading characters


class PromptInput(msgspec.Struct, frozen=True, kw_only=True):
    """What a node's prompt is made of; hashed into the node's content address."""

    role: Role
    passage: str
    context: str = ""
    cast: tuple[str, ...] = ()  # the characters the input names, most mentioned first


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def unwrap(text: str) -> str:
    """Join hard-wrapped lines inside paragraphs: small models copy line breaks into summaries."""
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(p for p in paragraphs if p)


class QuestionPrompt(PromptInput, frozen=True, kw_only=True):
    """A chunk or merge prompt focused on a question (`options.question`). A subclass rather than a field
    of `PromptInput`, so plain prompts encode, and so hash into node keys, exactly as before."""

    question: str


def focused(prompt: PromptInput, question: str) -> PromptInput:
    """`prompt` focused on `question`; itself when there is none."""
    if not question.strip():
        return prompt
    return QuestionPrompt(**msgspec.structs.asdict(prompt), question=" ".join(question.split()))


def chunk_prompt(passage: str, context: str = "", question: str = "") -> PromptInput:
    """Height 0: a raw passage, optionally with the raw text just before it, and the question to focus on."""
    return focused(PromptInput(role="chunk", passage=unwrap(passage), context=unwrap(context)), question)


def merge_prompt(child_summaries: list[str], question: str = "") -> PromptInput:
    """Height > 0: consecutive summaries joined in reading order, with the characters they name. Told the
    names, the model keeps them (on 3 SQuALITY train stories, root character recall 0.07 -> 0.33)."""
    passage = "\n\n".join(child_summaries)
    return focused(PromptInput(role="merge", passage=passage, cast=tuple(roster(passage, CAST_SIZE))),
                    question)


def _context_lines(prompt: PromptInput) -> str:
    if not prompt.context:
        return ""
    return f"For context only, the text just before the passage:\n{prompt.context}\n\n"


def _cast_line(prompt: PromptInput) -> str:
    return f"The characters: {', '.join(prompt.cast)}.\n" if prompt.cast else ""


def render_messages(prompt: PromptInput) -> list[dict[str, str]]:
    """Chat messages for the model's chat template."""
    match prompt:
        case QuestionPrompt(role="chunk"):
            user = (
                f"{_context_lines(prompt)}Passage:\n{prompt.passage}\n\n"
                "Summarize what happens in this passage in 2 to 4 sentences, keeping what bears on this "
                f"question: {prompt.question}"
            )
        case QuestionPrompt(role="merge"):
            user = (
                f"Summaries of consecutive parts of a story, in order:\n{prompt.passage}\n\n"
                f"{_cast_line(prompt)}Combine them into one summary of 4 to 8 sentences that keeps the main "
                f"events and characters, in order, and answers this question: {prompt.question}"
            )
        case PromptInput(role="chunk"):
            user = (
                f"{_context_lines(prompt)}Passage:\n{prompt.passage}\n\n"
                "Summarize what happens in this passage in 2 to 4 sentences."
            )
        case PromptInput(role="merge"):
            user = (
                f"Summaries of consecutive parts of a story, in order:\n{prompt.passage}\n\n"
                f"{_cast_line(prompt)}Combine them into one summary of 4 to 8 sentences that keeps the main "
                "events and characters, in order."
            )
        case HelperPrompt():
            return [{"role": "system", "content": HELPER_SYSTEM},
                    {"role": "user", "content": _helper_user(prompt)}]
        case _:
            raise ValueError(f"no summary prompt for role {prompt.role!r}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def template_digest(prompt: PromptInput) -> str:
    """A digest of the wording a prompt of this kind is rendered with, whatever it holds: part of a cached
    generation's content address, so nothing cached is reused once the instructions change."""
    return _template_digest(type(prompt), prompt.role, getattr(prompt, "task", ""))


@functools.cache
def _template_digest(kind: type[PromptInput], role: Role, task: str) -> str:
    fields = {"role": role, "passage": "{passage}", "context": "{context}", "cast": ("{cast}",)}
    if kind is HelperPrompt:
        probe = HelperPrompt(**fields, task=task, summary="{summary}", question="{question}")
    elif kind is QuestionPrompt:
        probe = QuestionPrompt(**fields, question="{question}")
    else:
        probe = PromptInput(**fields)
    return hashlib.sha256(msgspec.json.encode(render_messages(probe))).hexdigest()[:16]


# Helper reports. A critique judges each summary sentence on its own against its closest source sentence
# (its best evidence link) and answers with one verdict word; `helpers.verify` reads the verdict
# off the model's next-token probabilities, so a verdict is always one of VERDICTS.
HELPER_SYSTEM = "You check summaries of stories against their source text and point out errors precisely."
SUPPORTED = "SUPPORTED"
VERDICTS = (SUPPORTED, "UNSUPPORTED", "CONTRADICTED", "ENTITY")


class HelperPrompt(PromptInput, frozen=True, kw_only=True):
    """A helper task about a node: `passage` is the material (trimmed first when the window is short),
    `summary` the sentence under check (verify), `question` the evaluator's (qa)."""

    task: Literal["verify", "qa"]
    summary: str = ""
    question: str = ""


def _lines(sentences: list[str]) -> str:
    return "\n".join(" ".join(s.split()) for s in sentences)


def verify_prompt(sentence: str, closest: str) -> HelperPrompt:
    """Is one summary sentence supported by its closest source sentence? One short prompt per sentence: a
    135M helper shown a whole passage and summary found planted errors at about chance (26% with chance
    33%, README), while the sentence beside its closest source sentence is a comparison it can learn."""
    return HelperPrompt(role="helper", task="verify", passage=" ".join(closest.split()) or "(nothing)",
                        summary=" ".join(sentence.split()))


def qa_prompt(passages: list[str], question: str) -> HelperPrompt:
    """A question over numbered source passages (retrieved in reading order)."""
    return HelperPrompt(role="helper", task="qa", question=" ".join(question.split()),
                        passage="\n".join(f"[{i}] {' '.join(p.split())}" for i, p in enumerate(passages, 1)))


def _helper_user(prompt: HelperPrompt) -> str:
    if prompt.task == "qa":
        return (
            f"Numbered passages from a story:\n{prompt.passage}\n\n"
            f"Question: {prompt.question}\n"
            "Answer in one or two sentences using only the passages, and cite the passage numbers "
            "you used in brackets, like [2]."
        )
    return (
        f"Closest source sentence: {prompt.passage}\n\n"
        f"Summary sentence: {prompt.summary}\n\n"
        "Does the source sentence support the summary sentence? Answer with one word: SUPPORTED, "
        "UNSUPPORTED (the source never says it), CONTRADICTED (the source says the opposite) or "
        "ENTITY (it gives the act to the wrong character)."
    )


# Training examples carry their input as one text (`Comparison.input`); these map it back to the prompt
# the serving role renders. A critique's input is its source, a marker line, the summary sentences, another
# marker line, then each sentence's closest source sentence; a verification's is the closest source
# sentence, a marker line, then the summary sentence.
CRITIQUE_SUMMARY_MARKER = "\n\n=== Summary under critique, one sentence per line ===\n"
CRITIQUE_CLOSEST_MARKER = "\n=== Closest source sentence to each, line by line ===\n"
VERIFY_MARKER = "\n=== Summary sentence under check ===\n"


def critique_input(source: str, sentences: list[str], closest: list[str]) -> str:
    """The one-text form of a critique's input, as exported for `helper:critique` comparisons."""
    if len(closest) != len(sentences):
        raise ValueError(f"{len(sentences)} summary sentences but {len(closest)} closest sentences")
    return source + CRITIQUE_SUMMARY_MARKER + _lines(sentences) + CRITIQUE_CLOSEST_MARKER + _lines(closest)


def critique_line(kind: str, why: str, sentence: int | None = None, quote: str = "") -> str:
    """One line of a critique in the form the helper's training text uses: `KIND <n>: why` about summary
    sentence n (`sentence` is 0-based), or `KIND: "quote" - why` about source text the summary left out."""
    if sentence is None:
        return f'{kind.upper()}: "{quote}" - {why}'
    return f"{kind.upper()} {sentence + 1}: {why}"


def critique_sentences(text: str) -> tuple[list[str], list[str]]:
    """The summary sentences of a `critique_input` text and each one's closest source sentence."""
    _, _, rest = text.partition(CRITIQUE_SUMMARY_MARKER)
    summary, _, closest = rest.partition(CRITIQUE_CLOSEST_MARKER)
    sentences, closest_lines = summary.split("\n"), closest.split("\n")
    if not summary or len(closest_lines) != len(sentences):
        raise ValueError("not a critique input: it needs a summary section and one closest sentence per "
                         "summary sentence")
    return sentences, closest_lines


def verify_input(sentence: str, closest: str) -> str:
    """The one-text form of a verification's input (`helper:verify` examples)."""
    return " ".join(closest.split()) + VERIFY_MARKER + " ".join(sentence.split())


def task_prompt(task: str, text: str) -> PromptInput:
    """The prompt a training example's `task` and `input` stand for. `root` inputs are raw text
    (e.g. a whole SQuALITY story), so they take the chunk prompt."""
    match task:
        case "chunk" | "root":
            return chunk_prompt(text)
        case "merge":
            return merge_prompt([text])
        case "helper:verify":
            closest, _, sentence = text.partition(VERIFY_MARKER)
            return verify_prompt(sentence, closest)
        case _:
            raise ValueError(f"no prompt for training task {task!r}")
