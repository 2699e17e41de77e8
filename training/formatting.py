"""Training examples as the chat conversations the serving roles render, fitted to a token budget.

Prompts are fitted here (the passage trimmed from its end, as the service trims it) rather than by
TRL's truncation, which would cut the completion: what a role is trained on is what it is served.
"""

from recursum.service.engine.pipeline.generate import fit_prompt_input
from recursum.service.engine.pipeline.prompts import render_messages, task_prompt

Messages = list[dict[str, str]]


def prompt_messages(tokenizer, max_tokens: int, task: str, text: str, completion: str) -> Messages:
    """The role's prompt for `text`, trimmed so that it and `completion` fit in `max_tokens`."""
    reserve = len(tokenizer.encode(completion, add_special_tokens=False)) + 16
    fitted, _, _ = fit_prompt_input(tokenizer, max_tokens, task_prompt(task, text), reserve)
    return render_messages(fitted)


def assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]
