"""The service under load: N concurrent clients submit small documents and poll, against a real
`recursum serve` on loopback. Run twice in the same invocation: with cross-job batching (jobs'
heights share generation batches) and with one job at a time (RECURSUM_MAX_ACTIVE_JOBS=1).

    python bench/service.py                       # default model, 4 clients x 2 documents
    python bench/service.py --clients 8 --docs 3
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _data import shared_path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(home: Path, max_active: int, quantization: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"RECURSUM_HOME": str(home), "RECURSUM_MAX_ACTIVE_JOBS": str(max_active),
                        "RECURSUM_MAX_QUEUE": "1000"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli.main", "serve", "--dev", "--port", str(port),
         "--quantization", quantization, "--db", f"sqlite:///{home / 'bench.db'}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("server did not become ready")


def client_session(url: str, documents: list[str], options: dict, latencies: list[float]) -> None:
    """Submit every document, then poll each job until it is done, timing every GET."""
    with httpx.Client(base_url=url, timeout=60) as http:
        jobs = [http.post("/v1/summaries", json={"text": d, "options": options}).json()["url"]
                for d in documents]
        for job in jobs:
            while True:
                started = time.perf_counter()
                status = http.get(job).json()["status"]
                latencies.append(time.perf_counter() - started)
                if status in ("done", "failed", "cancelled"):
                    break
                time.sleep(0.5)


def run(label: str, max_active: int, args, documents: list[list[str]]) -> float:
    home = Path(tempfile.mkdtemp(prefix="recursum-bench-"))
    (home / "models").symlink_to(Path(os.environ.get("RECURSUM_HOME", Path.home() / ".cache/recursum")) / "models")
    process, url = start_server(home, max_active, args.quantization)
    latencies: list[float] = []
    options = {"chunk_tokens": args.chunk_tokens, "summary_tokens": args.summary_tokens}
    try:
        started = time.perf_counter()
        threads = [threading.Thread(target=client_session, args=(url, docs, options, latencies))
                   for docs in documents]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        metrics = httpx.get(f"{url}/metrics").text
    finally:
        process.terminate()
        process.wait()
    jobs = sum(len(docs) for docs in documents)
    quantiles = statistics.quantiles(latencies, n=20)
    batches = [line for line in metrics.splitlines() if line.startswith("recursum_generation_batch_size_")]
    count = next(float(b.split()[-1]) for b in batches if b.startswith("recursum_generation_batch_size_count"))
    total = next(float(b.split()[-1]) for b in batches if b.startswith("recursum_generation_batch_size_sum"))
    print(f"{label}: {jobs} jobs in {seconds:.1f} s = {jobs / seconds * 60:.1f} jobs/min; "
          f"GET p50 {quantiles[9] * 1000:.1f} ms, p95 {quantiles[18] * 1000:.1f} ms "
          f"({len(latencies)} polls); mean batch {total / count:.1f} sequences over {count:.0f} batches")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--docs", type=int, default=2, help="documents per client")
    parser.add_argument("--doc-chars", type=int, default=3000)
    parser.add_argument("--chunk-tokens", type=int, default=300)
    parser.add_argument("--summary-tokens", type=int, default=64)
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    args = parser.parse_args()

    text = shared_path("books/pride_and_prejudice.txt").read_text()
    start = len(text) // 4
    documents = [[text[start + (c * args.docs + d) * args.doc_chars:
                       start + (c * args.docs + d + 1) * args.doc_chars]
                  for d in range(args.docs)] for c in range(args.clients)]
    batched = run("cross-job batching (8 active jobs)", 8, args, documents)
    serial = run("one job at a time", 1, args, documents)
    print(f"batching gain: {serial / batched:.2f}x throughput")


if __name__ == "__main__":
    main()
