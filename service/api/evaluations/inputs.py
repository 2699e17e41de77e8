"""The prompt input a comparison trains on, rebuilt from the store as training formats it."""

from recursum.schemas.tree import Node
from recursum.service.engine.helpers.tasks import critiqued_input
from recursum.service.engine.pipeline.prompts import chunk_prompt, merge_prompt
from recursum.service.store.repository import Store


def stored_children(store: Store, job_id: str, node: Node) -> list[Node]:
    """The node's children still in the store, in reading order."""
    children = [store.nodes.get_job_node(job_id, child) for child in node.children]
    return [child for child in children if child is not None]


def node_input(store: Store, document_id: str, job_id: str, node: Node) -> str:
    """The node's prompt input as training formats it: the chunk's text, or its children's summaries."""
    if node.height == 0:
        document = store.jobs.get_document(document_id)
        passage = document.text[node.span.start : node.span.end] if document else ""
        return chunk_prompt(passage).passage
    return merge_prompt([child.summary for child in stored_children(store, job_id, node)]).passage


def critique_task_input(store: Store, document_id: str, job_id: str, node: Node, summary: int) -> str:
    """What a critique of the node's summary `summary` read, and that summary (`critiqued_input`)."""
    document = store.jobs.get_document(document_id)
    text = document.text if document else ""
    return critiqued_input(node, summary, stored_children(store, job_id, node), text)
