"""Progress events of a summary run: a tagged union shared by the CLI, SSE and the store."""

import msgspec

from clients.schemas import HeightDone, HeightStarted, Node


class NodeDone(msgspec.Struct, frozen=True, kw_only=True, tag="node_done"):
    node: Node


ProgressEvent = HeightStarted | NodeDone | HeightDone
