"""Starting `recursum serve` processes for benchmarks, and driving them with polling clients."""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from recursum.service.engine.models.model_store import models_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from loopback_server import ServerNotReady, free_port, wait_ready  # noqa: E402


class BenchServer:
    """A server with its own home (sharing the installed models), optionally on one core. Dev mode (no keys)
    unless `api_keys` (`name:secret:scope+scope,...`) is given: then it checks keys as in production. Its
    output goes to `log` when given (to find the tracebacks behind a 5xx), else nowhere."""

    def __init__(self, database_url: str | None, quantization: str, env: dict[str, str],
                 cpu: int | None = None, api_keys: str | None = None, log: Path | None = None) -> None:
        home = Path(tempfile.mkdtemp(prefix="recursum-bench-"))
        (home / "models").symlink_to(models_dir())
        port = free_port()
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if cpu is not None else {}
        auth = {"RECURSUM_API_KEYS": api_keys, "RECURSUM_DEV_MODE": ""} if api_keys is not None else {}
        # Load benches send every job from the one dev caller; with keys, the production limits hold.
        load = {"RECURSUM_MAX_QUEUE": "1000", "RECURSUM_MAX_JOBS_PER_KEY": "1000",
                "RECURSUM_MAX_KEY_TOKENS": str(10**12), "RECURSUM_MAX_STREAMS_PER_KEY": "1000"
                } if api_keys is None else {}
        dev = ["--dev"] if api_keys is None else []
        with open(log or os.devnull, "wb") as output:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [*pin, sys.executable, "-m", "recursum.service.cli.main", "serve", *dev, "--port", str(port),
                 "--quantization", quantization, "--db", database_url or f"sqlite:///{home / 'bench.db'}"],
                cwd=ROOT, env=os.environ | {"RECURSUM_HOME": str(home)} | load | threads | auth | env,
                stdout=output, stderr=output)
        self.url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(self.url, timeout=300, process=self.process)
        except ServerNotReady as error:
            self.stop()
            raise SystemExit(str(error)) from error

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def run_clients(urls: list[str], documents: list[list[str]], options: dict) -> tuple[float, list[float]]:
    """Client i submits its documents to urls[i % len(urls)] and polls each job until it ends.

    Returns the wall time and every GET latency."""
    latencies: list[float] = []

    def session(url: str, docs: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            jobs = [http.post("/v1/summaries", json={"text": d, "options": options}).json()["url"]
                    for d in docs]
            for job in jobs:
                while True:
                    started = time.perf_counter()
                    status = http.get(job).json()["status"]
                    latencies.append(time.perf_counter() - started)
                    if status in ("done", "failed", "cancelled"):
                        break
                    time.sleep(0.5)

    threads = [threading.Thread(target=session, args=(urls[i % len(urls)], docs))
               for i, docs in enumerate(documents)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def book_documents(book: str, clients: int, per_client: int, chars: int) -> list[list[str]]:
    """Consecutive, distinct excerpts of a book (so no two jobs share cached nodes)."""
    from _data import shared_path

    text = shared_path(f"books/{book}").read_text()
    start = len(text) // 4
    return [[text[start + (c * per_client + d) * chars : start + (c * per_client + d + 1) * chars]
             for d in range(per_client)] for c in range(clients)]


def add_load_arguments(parser, doc_chars: int, chunk_tokens: int, summary_tokens: int) -> None:
    """The documents and summary options a load bench submits, and the model it serves."""
    parser.add_argument("--doc-chars", type=int, default=doc_chars)
    parser.add_argument("--chunk-tokens", type=int, default=chunk_tokens)
    parser.add_argument("--summary-tokens", type=int, default=summary_tokens)
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])


def summary_options(args) -> dict[str, int]:
    """The `options` of every job a load bench submits."""
    return {"chunk_tokens": args.chunk_tokens, "summary_tokens": args.summary_tokens}
