"""Progress events of a summary run: a tagged union shared by the CLI, SSE and the store."""

import msgspec

from recursum.schemas.events import HeightDone, HeightStarted, JobEvent, NodeSummary
from recursum.schemas.tree import Node


class NodeDone(msgspec.Struct, frozen=True, kw_only=True, tag="node_done"):
    node: Node


ProgressEvent = HeightStarted | NodeDone | HeightDone


def to_wire(event: ProgressEvent) -> JobEvent:
    """Node events go out without the evidence payload; clients fetch the node when they want it."""
    if isinstance(event, NodeDone):
        node = event.node
        return NodeSummary(node_id=node.id, height=node.height, index=node.index, summary=node.summary)
    return event
