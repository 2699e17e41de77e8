"""The service under load: N concurrent clients submit small documents and poll, against a real
`recursum serve` on loopback. Run twice in the same invocation: with cross-job batching (jobs'
heights share generation batches) and with one job at a time (RECURSUM_MAX_ACTIVE_JOBS=1).

    python bench/service.py                       # default model, 4 clients x 2 documents
    python bench/service.py --clients 8 --docs 3
    python bench/service.py --smoke               # 2 clients x 1 short document (CI)
"""

import argparse
import statistics

from _server import BenchServer, add_load_arguments, book_documents, run_clients, summary_options
from _smoke import add_smoke_flag, apply_smoke


def run(label: str, max_active: int, args, documents: list[list[str]]) -> float:
    server = BenchServer(None, args.quantization, {"RECURSUM_MAX_ACTIVE_JOBS": str(max_active)})
    try:
        seconds, latencies = run_clients([server.url], documents,
                                         summary_options(args))
        batches = server.metric("recursum_generation_batch_size_count")
        sequences = server.metric("recursum_generation_batch_size_sum")
    finally:
        server.stop()
    jobs = sum(len(docs) for docs in documents)
    quantiles = statistics.quantiles(latencies, n=20)
    print(f"{label}: {jobs} jobs in {seconds:.1f} s = {jobs / seconds * 60:.1f} jobs/min; "
          f"GET p50 {quantiles[9] * 1000:.1f} ms, p95 {quantiles[18] * 1000:.1f} ms "
          f"({len(latencies)} polls); "
          f"mean batch {sequences / batches:.1f} sequences over {batches:.0f} batches")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--docs", type=int, default=2, help="documents per client")
    add_load_arguments(parser, doc_chars=3000, chunk_tokens=300, summary_tokens=64)
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), clients=2, docs=1, doc_chars=600, chunk_tokens=100,
                       summary_tokens=16)

    documents = book_documents("pride_and_prejudice.txt", args.clients, args.docs, args.doc_chars)
    batched = run("cross-job batching (8 active jobs)", 8, args, documents)
    serial = run("one job at a time", 1, args, documents)
    print(f"batching gain: {serial / batched:.2f}x throughput")


if __name__ == "__main__":
    main()
