"""Question-focused summaries on SQuALITY: ROUGE against the 4 human answers to each story's four
non-plot questions, for three ways of answering with the same model:

- tree: a question-focused tree (`options.question` in every chunk and merge prompt); its root answers;
- from the plain summary: the plain tree's root (one per story), then the service's qa helper prompt
  answering the question from it;
- naive map-reduce: LangChain's map-reduce question answering (its default map and combine prompts) as the
  plain batch-1 loop it runs.

Also the answers' words and seconds per question. Prompts are tuned on train; dev is for reporting.

    python bench/questions.py --stories 6          # the first 6 dev stories, 24 questions
    python bench/questions.py --split train --stories 2 --show
    python bench/questions.py --smoke              # the start of one story, one question (CI)
"""

import argparse
import json
import statistics
import time

from _data import shared_path
from _naive_mapreduce import NaiveMapReduce
from _smoke import add_smoke_flag, apply_smoke
from quality import METRICS, RougeRow, rouge
from rouge_score import rouge_scorer

from recursum.service.engine.models.model_store import pull_default_model
from recursum.service.engine.models.runtime import load_runtime
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.chunking import chunk_document
from recursum.service.engine.pipeline.document import make_document
from recursum.service.engine.pipeline.evidence import EvidenceScorer
from recursum.service.engine.pipeline.generate import generate_batched
from recursum.service.engine.pipeline.node_cache import MemoryNodeCache
from recursum.service.engine.pipeline.prompts import qa_prompt
from recursum.service.engine.pipeline.recursion import Summarizer
from recursum.service.engine.pipeline.results import GenerationRequest, GenerationSettings
from recursum.service.engine.pipeline.tree import TreeConfig

PLOT_QUESTION = 1
METHODS = ("tree", "from plain summary", "naive map-reduce")
# LangChain's defaults for load_qa_chain(chain_type="map_reduce"): map each chunk, then combine.
MAP_PROMPT = ("Use the following portion of a long document to see if any of the text is relevant to answer "
              "the question. \nReturn any relevant text verbatim.\n{context}\nQuestion: {question}\n"
              "Relevant text, if any:")
COMBINE_PROMPT = ("Given the following extracted parts of a long document and a question, create a final "
                  "answer. \n\nQUESTION: {question}\n=========\n{summaries}\n=========\nFINAL ANSWER:")


def load_questions(split: str, limit: int | None) -> list[tuple[str, str, list[tuple[str, list[str]]]]]:
    """(title, story, [(question, its 4 human answers)] for the non-plot questions) per story."""
    stories = []
    for line in shared_path(f"references/squality/{split}.jsonl").read_text().splitlines():
        record = json.loads(line)
        questions = [(q["question_text"], [r["response_text"] for r in q["responses"]])
                     for q in record["questions"] if q["question_number"] != PLOT_QUESTION]
        stories.append((f"story {record['metadata']['passage_id']}", record["document"], questions))
    return stories[:limit]


def answer_from_summary(runtime, summary: str, question: str, max_new_tokens: int) -> str:
    """The qa helper's prompt over the plain summary's paragraphs (the base model where no helper adapter)."""
    prompt = qa_prompt([p for p in summary.split("\n\n") if p.strip()], question)
    request = GenerationRequest(key="qa", adapter=runtime.adapter_for("helper"), prompt=prompt)
    (result,) = generate_batched(runtime, [request], GenerationSettings(max_new_tokens=max_new_tokens), 1)
    return result.text


def naive_answer(naive: NaiveMapReduce, chunks: list[str], question: str, max_new_tokens: int) -> str:
    def ask(text: str) -> str:
        return naive.generate([{"role": "user", "content": text}], max_new_tokens)

    extracts = [ask(MAP_PROMPT.format(context=chunk, question=question)) for chunk in chunks]
    return ask(COMBINE_PROMPT.format(question=question, summaries="\n\n".join(extracts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "train"), default="dev")
    parser.add_argument("--stories", type=int, default=None, help="the first N stories (default: all)")
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    parser.add_argument("--summary-tokens", type=int, default=TreeConfig().summary_tokens)
    parser.add_argument("--root-words", type=int, default=TreeConfig().root_words,
                        help="of the question-focused tree (0: its root is one generated answer)")
    parser.add_argument("--answer-tokens", type=int, default=160, help="new tokens of a qa or naive answer")
    parser.add_argument("--max-chars", type=int, default=None, help="only each story's start")
    parser.add_argument("--questions", type=int, default=4, help="questions per story (of 4)")
    parser.add_argument("--show", action="store_true", help="print every answer")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, of: {', '.join(METHODS)} (tuning runs skip the slow ones)")
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), stories=1, max_chars=3000, questions=1, summary_tokens=48,
                       answer_tokens=32)
    pull_default_model()
    runtime = load_runtime(ModelSpec(quantization=args.quantization))
    methods = [method for method in METHODS if method in args.methods.split(",")]
    scorer = EvidenceScorer()
    naive = NaiveMapReduce() if "naive map-reduce" in methods else None
    config = TreeConfig(summary_tokens=args.summary_tokens)
    rouge_of = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    rows: dict[str, list[RougeRow]] = {method: [] for method in methods}
    words: dict[str, list[int]] = {method: [] for method in methods}
    human_words: list[int] = []
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    for title, story, questions in load_questions(args.split, args.stories):
        text = story[: args.max_chars] if args.max_chars else story
        document = make_document(text, title)
        started = time.perf_counter()
        plain = (Summarizer(runtime, scorer, config, MemoryNodeCache()).summarize(document).root_node.summary
                 if "from plain summary" in methods else "")
        plain_seconds = time.perf_counter() - started
        chunks = [document.text[c.span.start : c.span.end]
                  for c in chunk_document(document.text, config.chunk_tokens)]
        for question, references in questions[: args.questions]:
            answers = {}
            for method in methods:
                started = time.perf_counter()
                match method:
                    case "tree":
                        focused = TreeConfig(summary_tokens=args.summary_tokens, question=question,
                                             root_words=args.root_words)
                        answers[method] = Summarizer(runtime, scorer, focused, MemoryNodeCache()).summarize(
                            document).root_node.summary
                    case "from plain summary":
                        answers[method] = answer_from_summary(runtime, plain, question, args.answer_tokens)
                        seconds[method] += plain_seconds / len(questions[: args.questions])
                    case "naive map-reduce":
                        answers[method] = naive_answer(naive, chunks, question, args.answer_tokens)
                seconds[method] += time.perf_counter() - started
                rows[method].append(rouge(rouge_of, answers[method], references))
                words[method].append(len(answers[method].split()))
            human_words.extend(len(reference.split()) for reference in references)
            if args.show:
                print(f"\n{title}: {question}")
                for method, answer in answers.items():
                    print(f"  [{method}] {answer}")
        print(f"{title}: done", flush=True)
    count = len(human_words) // 4
    print(f"\n{count} questions ({args.split}); ROUGE F1 against 4 human answers (best of 4 / mean of 4); "
          f"the human answers have {statistics.mean(human_words):.0f} words on average")
    for method in methods:
        cells = "  ".join(f"{m} {statistics.mean(r[m][0] for r in rows[method]):.3f}/"
                          f"{statistics.mean(r[m][1] for r in rows[method]):.3f}" for m in METRICS)
        print(f"{method:>20}: {cells}  words {statistics.mean(words[method]):.0f}  "
              f"{seconds[method] / count:.0f} s per question")


if __name__ == "__main__":
    main()
