"""Critique of a node's summary: items from evidence, the parser of critique lines, and what the helper
model's verdicts read (`critique_parts`; the verdicts themselves are `service.engine.helpers.verify`'s).

Critiques travel as lines: `KIND <n>: <reason>` naming a summary sentence by its number, or
`KIND: "<quote>" - <reason>` quoting one (always so for an omission, whose sentence is a child or source
one). Exported comparisons of critiques carry them, and training reads them back strictly: an item counts
only if its number or quote resolves to a sentence the node really has; a misspelt kind word
(`UNSUSPORTED`) is read as the kind it is close to. Because a small helper misses most errors, the
evidence scores supply items of their own (`origin="evidence"`): sentences without support, names a
sentence's support never mentions, polarity flipped against its best support, and salient child sentences
no summary sentence draws on.
"""

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from recursum.schemas.reports import CritiqueItem, CritiqueKind
from recursum.schemas.tree import EvidenceLink, Node, Sentence, Span
from recursum.service.engine.pipeline.entities import known_names, sentence_entities, words
from recursum.service.engine.pipeline.evidence import EvidenceScorer, lexical_overlap, polarity_mismatch
from recursum.service.engine.pipeline.polarity import flip_polarity

QUOTE_RATIO = 0.9  # difflib ratio at which a normalized quote counts as the sentence
MIN_CONTAINED_WORDS = 5  # a partial quote must be this long ...
MIN_CONTAINED_SHARE = 0.6  # ... and cover this share of the sentence's characters
NEIGHBOURS = 3  # source sentences on each side of a link whose names count as support
CONTRADICTION_OVERLAP = 0.4  # word overlap with the best support at which a polarity flip contradicts it
MAX_OMISSIONS = 3
OMISSION_SEVERITY = 0.3
MAX_EXPLANATION = 300
CAST = 8  # most often named characters of a node's inputs tried in a sentence's place
COUNTERFACTUAL_MARGIN = 0.05  # support gain at which a name swap or polarity flip marks the sentence

_ITEM = re.compile(
    r"""^[\s*\-\d.)]*(?P<kind>[A-Za-z]{4,})\s*:?\s*
        (?:\#?(?P<number>\d{1,3})\b|["“”'‘’](?P<quote>.+?)["“”'‘’])
        \s*(?:[-–—:,.)]\s*(?P<reason>.*))?$""",
    re.VERBOSE,
)
_KINDS: dict[str, CritiqueKind] = {
    "unsupported": "unsupported", "contradicted": "contradicted", "contradiction": "contradicted",
    "entity": "entity", "omission": "omission", "omitted": "omission",
}
KIND_SPELLING_RATIO = 0.75  # difflib ratio at which a misspelt kind word (same first letter) counts


@dataclass(frozen=True)
class MaterialSentence:
    """A sentence a node was written from: a child's summary sentence, or a leaf's source sentence."""

    link: EvidenceLink  # target node id (or "source") and index; score unused
    text: str
    spans: tuple[Span, ...]


def critique_parts(sentences: Sequence[Sentence],
                   material: Sequence[MaterialSentence]) -> tuple[str, list[str], list[str]]:
    """What a critique of `sentences` reads: the material as one text, the sentences, and each one's best
    evidence link's text ("" without one), the arguments of `prompts.critique_prompt` and `critique_input`."""
    text_of = {(m.link.target, m.link.sentence): m.text for m in material}
    closest = [next((text_of[key] for link in s.links if (key := (link.target, link.sentence)) in text_of),
                    "") for s in sentences]
    return "\n".join(m.text for m in material), [s.text for s in sentences], closest


@dataclass(frozen=True)
class ParsedItem:
    kind: CritiqueKind
    number: int | None  # 1-based summary sentence number, when the line names one
    quote: str  # when the line quotes instead
    reason: str


def parse_items(text: str) -> list[ParsedItem]:
    """Distinct lines of the prompted forms; anything else the model wrote is ignored."""
    items = []
    for line in text.splitlines():
        if (match := _ITEM.match(line.strip())) and (kind := _kind(match.group("kind"))):
            number, quote = match.group("number"), match.group("quote") or ""
            items.append(ParsedItem(kind, int(number) if number else None, quote.strip(),
                                    (match.group("reason") or "").strip()[:MAX_EXPLANATION]))
    return list(dict.fromkeys(items))  # a small model repeats lines: one item each


def _kind(word: str) -> CritiqueKind | None:
    word = word.lower()
    if word in _KINDS:
        return _KINDS[word]
    close = difflib.get_close_matches(word, _KINDS, n=1, cutoff=KIND_SPELLING_RATIO)
    return _KINDS[close[0]] if close and close[0][0] == word[0] else None


def claim_index(item: ParsedItem, claims: Sequence[str]) -> int | None:
    """The summary sentence an item names (by number) or quotes, or None: one the summary does not have."""
    if item.number is not None:
        return item.number - 1 if 1 <= item.number <= len(claims) else None
    return match_quote(item.quote, claims)


def _normalized(text: str) -> str:
    return " ".join(w.casefold() for w in words(text))


def match_quote(quote: str, sentences: Sequence[str]) -> int | None:
    """Index of the sentence `quote` reproduces (normalized equal, difflib ratio >= 0.9, or a long enough
    verbatim part of it), or None: a quote of nothing the node says."""
    wanted = _normalized(quote)
    if not wanted:
        return None
    best, best_ratio = None, 0.0
    for index, sentence in enumerate(sentences):
        have = _normalized(sentence)
        if not have:
            continue
        if wanted == have:
            return index
        contained = (wanted in have and len(wanted.split()) >= MIN_CONTAINED_WORDS
                     and len(wanted) >= MIN_CONTAINED_SHARE * len(have))
        ratio = 1.0 if contained else difflib.SequenceMatcher(None, wanted, have, autojunk=False).ratio()
        if ratio > best_ratio:
            best, best_ratio = index, ratio
    return best if best_ratio >= QUOTE_RATIO else None


def evidence_items(node: Node, material: Sequence[MaterialSentence], threshold: float,
                   scorer: EvidenceScorer | None = None) -> list[CritiqueItem]:
    """Items the evidence scores support without any generation; with `scorer`, also the counterfactual
    checks (`counterfactual_items`)."""
    texts = [m.text for m in material]
    index_of = {(m.link.target, m.link.sentence): k for k, m in enumerate(material)}
    names = known_names([*texts, *(s.text for s in node.sentences)])
    items: list[CritiqueItem] = []
    for i, sentence in enumerate(node.sentences):
        common = {"quote": sentence.text, "sentence": i, "links": sentence.links,
                  "spans": sentence.source_spans}
        weakest = min(sentence.support, sentence.source_support)
        if sentence.unsupported or sentence.source_support < threshold:
            where = "its inputs" if sentence.unsupported else "the source, through a weak child sentence"
            items.append(CritiqueItem(
                kind="unsupported", origin="evidence", severity=round(1.0 - weakest, 3), **common,
                explanation=f"nothing in {where} supports it (support {sentence.support:.2f}, down to the "
                            f"source {sentence.source_support:.2f}; threshold {threshold:.2f})"))
        linked = [index_of[key] for link in sentence.links
                  if (key := (link.target, link.sentence)) in index_of]
        if not linked:
            continue
        missing = _names_missing_from_support(sentence.text, linked, material, names)
        if missing:
            absent = [n for n in missing if not any(n.lower() in t.lower() for t in texts)]
            # A name nowhere in the inputs is strong evidence; one merely not near the support is weak
            # (fiction says "he" a paragraph long).
            items.append(CritiqueItem(
                kind="entity", origin="evidence", severity=0.9 if absent else 0.3,
                **common,
                explanation=f"{', '.join(sorted(missing))} not named in its supporting sentences"
                            + (" (nor anywhere in its inputs)" if absent else "")))
        best = texts[linked[0]]
        # Word overlap weighted by IDF over all the node's material, so shared names and rare words count.
        if (polarity_mismatch([sentence.text], [best])[0, 0]
                and lexical_overlap([sentence.text], texts)[0, linked[0]] >= CONTRADICTION_OVERLAP):
            items.append(CritiqueItem(
                kind="contradicted", origin="evidence", severity=0.7, **common,
                explanation=f"its best support says the opposite: \"{best}\""))
    items.extend(_salient_omissions(node, material, names))
    if scorer is not None:
        items.extend(counterfactual_items(scorer, node, texts, names))
    return items


def counterfactual_items(scorer: EvidenceScorer, node: Node, texts: Sequence[str],
                         names: frozenset[str]) -> list[CritiqueItem]:
    """Would the node's inputs support the sentence better with another character's name, or with the
    opposite polarity? Then it likely confuses the characters (entity) or says the opposite (contradicted).

    Each variant of a sentence is scored against the same inputs as the sentence itself; an item needs a
    gain of COUNTERFACTUAL_MARGIN, and its severity grows with the gain.
    """
    counts = Counter(n for t in texts for n in sentence_entities(t, names))
    cast = [name for name, _ in counts.most_common(CAST)]
    claims = [s.text for s in node.sentences]
    variants: list[tuple[int, CritiqueKind, str, str]] = []  # (sentence, kind, what changed, text)
    for i, claim in enumerate(claims):
        for name in sentence_entities(claim, names):
            for other in cast:
                if other != name and not re.search(rf"\b{re.escape(other)}\b", claim):
                    changed = re.sub(rf"\b{re.escape(name)}\b", other, claim)
                    variants.append((i, "entity", f"with {other} for {name}", changed))
        if (flipped := flip_polarity(claim)) is not None:
            variants.append((i, "contradicted", "with the opposite polarity", flipped))
    if not variants or not texts:
        return []
    own = [ranked[0][1] for ranked in scorer.support(claims, texts, 1)]
    scored = scorer.support([v[3] for v in variants], texts, 1)
    best: dict[tuple[int, str], tuple[float, str, str]] = {}
    for (i, kind, change, _), ranked in zip(variants, scored, strict=True):
        gain = ranked[0][1] - own[i]
        if gain >= COUNTERFACTUAL_MARGIN and gain > best.get((i, kind), (0.0,))[0]:
            best[(i, kind)] = (gain, change, texts[ranked[0][0]])
    items = []
    for (i, kind), (gain, change, support) in sorted(best.items()):
        sentence = node.sentences[i]
        items.append(CritiqueItem(
            kind=kind, origin="evidence", quote=sentence.text, sentence=i, links=sentence.links,
            spans=sentence.source_spans, severity=round(min(1.0, 0.6 + 2 * gain), 3),
            explanation=f"the inputs support it better {change} (+{gain:.2f}): \"{support}\""))
    return items


def _names_missing_from_support(claim: str, linked: list[int], material: Sequence[MaterialSentence],
                                names: frozenset[str]) -> set[str]:
    """Names of `claim` that neither its linked sentences nor their neighbours mention."""
    wanted = {n.lower() for n in sentence_entities(claim, names)}
    if not wanted:
        return set()
    near: set[str] = set()
    for k in linked:
        for j in range(max(0, k - NEIGHBOURS), min(len(material), k + NEIGHBOURS + 1)):
            if material[j].link.target == material[k].link.target:
                near.update(w.lower() for w in words(material[j].text))
    return {n for n in sentence_entities(claim, names) if n.lower() in wanted - near}


def _salient_omissions(node: Node, material: Sequence[MaterialSentence],
                       names: frozenset[str]) -> list[CritiqueItem]:
    """Child sentences no summary sentence links to that name someone the summary never mentions."""
    used = {(link.target, link.sentence) for s in node.sentences for link in s.links}
    mentioned = {w.lower() for s in node.sentences for w in words(s.text)}
    scored = []
    for position, m in enumerate(material):
        if (m.link.target, m.link.sentence) in used:
            continue
        unseen = sorted({n for n in sentence_entities(m.text, names) if n.lower() not in mentioned})
        if unseen:
            scored.append((-len(unseen), position, m, unseen))
    scored.sort(key=lambda entry: entry[:2])
    return [CritiqueItem(kind="omission", origin="evidence", quote=m.text, child=m.link, spans=m.spans,
                         severity=OMISSION_SEVERITY,
                         explanation=f"names {', '.join(unseen)}, whom the summary never mentions")
            for _, _, m, unseen in scored[:MAX_OMISSIONS]]


def combine(evidence: list[CritiqueItem], model: list[CritiqueItem]) -> tuple[CritiqueItem, ...]:
    """Both origins, most severe first; a model item the evidence already makes is kept (it says the model
    agrees) but never twice from one origin."""
    seen: set[tuple] = set()
    items = []
    for item in sorted([*evidence, *model], key=lambda it: (-it.severity, it.sentence or 0)):
        key = (item.kind, item.origin, item.sentence, item.child)
        if key not in seen:
            seen.add(key)
            items.append(item)
    return tuple(items)
