"""How a finished tree is shown on stdout: the root summary as text, markdown or JSON."""

from typing import Literal

import msgspec

from recursum.schemas.tree import Node
from recursum.service.engine.pipeline.tree import Tree

OutputFormat = Literal["text", "markdown", "json"]


def render_tree(tree: Tree, output_format: OutputFormat) -> str:
    match output_format:
        case "text":
            return tree.root_node.summary
        case "json":
            return msgspec.json.format(msgspec.json.encode(tree).decode())
        case "markdown":
            return _markdown(tree)


def _marked(node: Node) -> str:
    """The summary with unsupported sentences struck through and flagged for the reader."""
    return " ".join(
        f"~~{s.text}~~ *(unsupported, {s.support:.2f})*" if s.unsupported else s.text
        for s in node.sentences
    ) or node.summary


def _markdown(tree: Tree) -> str:
    title = tree.title or "Summary"
    lines = [f"# {title}", "", _marked(tree.root_node), ""]
    for height in range(len(tree.heights) - 2, -1, -1):
        lines += [f"## Height {height} ({len(tree.heights[height])} summaries)", ""]
        for node_id in tree.heights[height]:
            node = tree.nodes[node_id]
            lines += [f"- **{node.index}** (chars {node.span.start}-{node.span.end}): "
                      f"{_marked(node)}"]
        lines.append("")
    return "\n".join(lines)
