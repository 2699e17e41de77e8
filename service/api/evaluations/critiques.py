"""A stored critique as evaluators see it and training reads it: its items as lines, and who wrote it."""

from recursum.service.engine.pipeline.prompts import critique_line
from recursum.service.store.evaluations import StoredReport


def critique_lines(report: StoredReport) -> tuple[str, ...]:
    """A critique's items as lines in the forms the helper prompt asks for (`KIND <n>: why` for a summary
    sentence, `OMISSION: "quote" - why`), so an exported `helper:critique` comparison trains the helper on
    text its parser reads back."""
    items = (report.body or {}).get("items", [])
    return tuple(critique_line(item.get("kind", "unsupported"), item.get("explanation", ""),
                               item.get("sentence"), item.get("quote", "")) for item in items)


def critique_text(report: StoredReport) -> str:
    lines = critique_lines(report)
    return "\n".join(lines) if lines else "No problems found."


def critique_policy(report: StoredReport) -> str:
    sample = report.request.get("sample", 0)
    adapter = report.request.get("adapter")
    return f"adapter:{adapter}" if adapter else f"sample:{sample}"
