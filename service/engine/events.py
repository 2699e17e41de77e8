"""Progress events of a summary run: a tagged union shared by the CLI, SSE and the store."""

import msgspec

from service.engine.tree import Node


class HeightStarted(msgspec.Struct, frozen=True, kw_only=True, tag="height_started"):
    height: int
    nodes: int
    cached: int


class NodeDone(msgspec.Struct, frozen=True, kw_only=True, tag="node_done"):
    node: Node


class HeightDone(msgspec.Struct, frozen=True, kw_only=True, tag="height_done"):
    height: int
    nodes: int


ProgressEvent = HeightStarted | NodeDone | HeightDone
