"""Throughput of one replica against two on one PostgreSQL database, each replica on one core.

Starts a throwaway PostgreSQL cluster on a Unix socket (Debian's `postgresql` package), then runs
the same jobs against one replica pinned to core 0, and against two replicas pinned to cores 0
and 1 (clients spread over both), in the same invocation.

    python bench/replicas.py                 # default model, 8 jobs
    python bench/replicas.py --jobs 16
    python bench/replicas.py --smoke         # 2 short jobs (CI)
"""

import argparse
import sys
from pathlib import Path

from _server import BenchServer, add_load_arguments, book_documents, run_clients, summary_options
from _smoke import add_smoke_flag, apply_smoke

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from postgres_cluster import ClusterUnavailable, new_database, throwaway_cluster  # noqa: E402


def run(label: str, cluster: str, cpus: list[int], args, documents: list[list[str]]) -> float:
    url = new_database(cluster)
    servers = [BenchServer(url, args.quantization, {"RECURSUM_REPLICA_ID": f"replica-{cpu}"}, cpu=cpu)
               for cpu in cpus]
    try:
        seconds, latencies = run_clients([s.url for s in servers], documents,
                                         summary_options(args))
        per_replica = [s.metric('recursum_jobs_total{status="done"}') for s in servers]
        batches = sum(s.metric("recursum_generation_batch_size_count") for s in servers)
        sequences = sum(s.metric("recursum_generation_batch_size_sum") for s in servers)
    finally:
        for server in servers:
            server.stop()
    jobs = sum(len(docs) for docs in documents)
    print(f"{label}: {jobs} jobs in {seconds:.1f} s = {jobs / seconds * 60:.1f} jobs/min; "
          f"jobs per replica {[int(n) for n in per_replica]}; "
          f"mean batch {sequences / batches:.1f} over {batches:.0f} batches; "
          f"GET max {max(latencies) * 1000:.0f} ms")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    add_load_arguments(parser, doc_chars=1500, chunk_tokens=400, summary_tokens=48)
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), jobs=2, doc_chars=400, chunk_tokens=100, summary_tokens=16)

    documents = book_documents("frankenstein.txt", args.jobs, 1, args.doc_chars)
    try:
        with throwaway_cluster() as cluster:
            one = run("one replica, one core", cluster, [0], args, documents)
            two = run("two replicas, one core each", cluster, [0, 1], args, documents)
    except ClusterUnavailable as reason:
        sys.exit(f"skipped: {reason}")
    print(f"two replicas vs one: {one / two:.2f}x throughput")


if __name__ == "__main__":
    main()
