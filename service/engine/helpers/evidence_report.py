"""The evidence report: a node's stored evidence with every link resolved to text and source spans."""

from collections.abc import Sequence

from recursum.schemas.reports import EvidenceReport, SentenceEvidence, SupportingSentence
from recursum.schemas.tree import Node
from recursum.service.engine.helpers.tasks import node_material


def evidence_report(node: Node, children: Sequence[Node], text: str) -> EvidenceReport:
    """The node's stored evidence with every link resolved to its sentence's text and source spans."""
    material = {(m.link.target, m.link.sentence): m for m in node_material(node, children, text)}
    sentences = []
    for i, s in enumerate(node.sentences):
        supports = tuple(
            SupportingSentence(target=link.target, sentence=link.sentence, score=link.score, text=m.text,
                               source_spans=m.spans)
            for link in s.links if (m := material.get((link.target, link.sentence))) is not None
        )
        sentences.append(SentenceEvidence(index=i, text=s.text, support=s.support,
                                          source_support=s.source_support, unsupported=s.unsupported,
                                          supports=supports, source_spans=s.source_spans))
    return EvidenceReport(summary=node.summary, sentences=tuple(sentences),
                          unsupported=sum(s.unsupported for s in node.sentences))
