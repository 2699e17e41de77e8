"""Role prompts, shared by inference and training: both must format inputs exactly alike."""

import msgspec

from service.engine.tree import Role

SYSTEM = "You are a careful assistant who summarizes books faithfully. Never invent events or names."


class PromptInput(msgspec.Struct, frozen=True, kw_only=True):
    """What a node's prompt is made of; hashed into the node's content address."""

    role: Role
    passage: str
    context: str = ""


def chunk_prompt(passage: str, context: str = "") -> PromptInput:
    """Height 0: a raw passage, optionally with the raw text just before it."""
    return PromptInput(role="chunk", passage=passage, context=context)


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
                f"{context}Summarize the following passage from a book in 2 to 4 sentences. "
                "Name the characters and say what happens.\n\n"
                f"Passage:\n{prompt.passage}"
            )
        case "merge":
            user = (
                "Below are summaries of consecutive parts of a book, in order. Combine them into "
                "one summary of 3 to 5 sentences that keeps the main events and characters.\n\n"
                f"Summaries:\n{prompt.passage}"
            )
        case _:
            raise ValueError(f"no summary prompt for role {prompt.role!r}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
