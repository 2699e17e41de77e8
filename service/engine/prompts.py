"""Role prompts, shared by inference and training: both must format inputs exactly alike."""

import re

import msgspec

from clients.schemas import Role

SYSTEM = "You summarize stories faithfully, using only facts stated in the text."


class PromptInput(msgspec.Struct, frozen=True, kw_only=True):
    """What a node's prompt is made of; hashed into the node's content address."""

    role: Role
    passage: str
    context: str = ""


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def unwrap(text: str) -> str:
    """Join hard-wrapped lines inside paragraphs: small models copy line breaks into summaries."""
    paragraphs = (" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def chunk_prompt(passage: str, context: str = "") -> PromptInput:
    """Height 0: a raw passage, optionally with the raw text just before it."""
    return PromptInput(role="chunk", passage=unwrap(passage), context=unwrap(context))


def merge_prompt(child_summaries: list[str]) -> PromptInput:
    """Height > 0: consecutive summaries joined in reading order."""
    return PromptInput(role="merge", passage="\n\n".join(child_summaries))


def render_messages(prompt: PromptInput) -> list[dict[str, str]]:
    """Chat messages for the model's chat template."""
    match prompt.role:
        case "chunk":
            context = (
                f"For context only, the text just before the passage:\n{prompt.context}\n\n"
                if prompt.context
                else ""
            )
            user = (
                f"{context}Passage:\n{prompt.passage}\n\n"
                "Summarize what happens in this passage in 2 to 4 sentences."
            )
        case "merge":
            user = (
                f"Summaries of consecutive parts of a story, in order:\n{prompt.passage}\n\n"
                "Combine them into one summary of 4 to 8 sentences that keeps the main events "
                "and characters, in order."
            )
        case _:
            raise ValueError(f"no summary prompt for role {prompt.role!r}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
