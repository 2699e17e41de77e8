"""The scheduler under load, against real `recursum serve` processes on loopback (default model).

In one run:
- small job alone, then the same-sized small job submitted while a large job runs: time to its first
  node and to completion (goal: under load at most 2x alone);
- fairness: alice submits four jobs, bob two, at once; each key's share of the nodes finished while both
  still had work (goal 40-60%);
- throughput: that mixed workload's tokens/s (and the small job under load), against the code before the
  node scheduler (`--baseline-src`, a checkout of it; its height rounds) served the same way;
- whole book: a book through the server, its wall time and tokens/s against `recursum doctor`'s probe,
  and its ETA at 25, 50 and 75% of its nodes against the time that really remained.

    python bench/service.py --baseline-src /tmp/baseline-src   # git worktree add /tmp/baseline-src 4339254
    python bench/service.py --smoke                            # the whole path on tiny inputs (CI)
"""

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _data import shared_path
from _server import BenchServer
from _smoke import add_smoke_flag, apply_smoke

SECRETS = {"alice": secrets.token_hex(20), "bob": secrets.token_hex(20)}
KEYS = ",".join(f"{name}:{secret}:summarize" for name, secret in SECRETS.items())
ALICE, BOB = ({"Authorization": f"Bearer {SECRETS[name]}"} for name in ("alice", "bob"))
ENDED = ("done", "failed", "cancelled")


class Job:
    """A submitted job, polled until it ends; remembers when its first node and its end were seen."""

    def __init__(self, http: httpx.Client, text: str, options: dict, headers: dict) -> None:
        self.http, self.headers = http, headers
        self.submitted = time.monotonic()
        response = http.post("/v1/summaries", json={"text": text, "options": options}, headers=headers)
        response.raise_for_status()
        self.url = response.json()["url"]
        self.first_node: float | None = None
        self.ended: float | None = None
        self.status: dict = {}

    def poll(self) -> dict:
        self.status = self.http.get(self.url, headers=self.headers).json()
        now = time.monotonic()
        if self.first_node is None and any(h["done"] for h in self.status["progress"]):
            self.first_node = now
        if self.ended is None and self.status["status"] in ENDED:
            self.ended = now
        return self.status

    @property
    def nodes_done(self) -> int:
        return sum(h["done"] for h in self.status.get("progress", []))

    def wait(self, period: float = 0.25) -> "Job":
        while self.poll()["status"] not in ENDED:
            time.sleep(period)
        if self.status["status"] != "done":
            raise SystemExit(f"job {self.url} ended {self.status['status']}: {self.status.get('error')}")
        return self

    def latencies(self) -> tuple[float, float]:
        return self.first_node - self.submitted, self.ended - self.submitted


def excerpts(book: str, sizes: list[int]) -> list[str]:
    """Consecutive excerpts of `book` from its second quarter, so no two share cached nodes."""
    text = shared_path(f"books/{book}").read_text()
    start, pieces = len(text) // 4, []
    for size in sizes:
        pieces.append(text[start : start + size])
        start += size
    return pieces


def tokens(server: BenchServer) -> float:
    return server.metric("recursum_generated_tokens_total") + server.metric("recursum_prompt_tokens_total")


def small_under_load(http: httpx.Client, options: dict, small: list[str], large: str) -> None:
    alone = Job(http, small[0], options, ALICE).wait()
    big = Job(http, large, options, ALICE)
    while big.poll()["status"] not in ENDED and not big.nodes_done:  # until its batches are going
        time.sleep(0.25)
    loaded = Job(http, small[1], options, BOB).wait()
    big.wait()
    (first_alone, done_alone), (first_loaded, done_loaded) = alone.latencies(), loaded.latencies()
    print(f"small job ({len(small[0]):,} chars) alone: first node {first_alone:.1f} s, "
          f"done {done_alone:.1f} s")
    print(f"small job under a {len(large):,}-char job: first node {first_loaded:.1f} s, "
          f"done {done_loaded:.1f} s = {done_loaded / done_alone:.2f}x alone (goal <= 2x)")


def mixed_workload(server: BenchServer, options: dict, texts: list[str], label: str) -> float:
    """Alice's four jobs and Bob's two at once: each key's share of the nodes finished while both had work,
    and the workload's tokens/s."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        before, started = tokens(server), time.monotonic()
        jobs = {"alice": [Job(http, text, options, ALICE) for text in texts[:4]],
                "bob": [Job(http, text, options, BOB) for text in texts[4:6]]}
        share = None
        while True:
            busy = {key: [job for job in mine if job.poll()["status"] not in ENDED]
                    for key, mine in jobs.items()}
            if share is None and not all(busy.values()):  # the first key just finished: count the nodes
                done = {key: sum(job.nodes_done for job in mine) for key, mine in jobs.items()}
                share = done["alice"] / max(1, sum(done.values()))
            if not any(busy.values()):
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        rate = (tokens(server) - before) / seconds
    print(f"{label}: 6 jobs in {seconds:.1f} s, {rate:.1f} tokens/s; alice's share of nodes while both "
          f"keys had work {share:.0%} (4 jobs against 2; goal 40-60%)")
    return rate


def doctor_probe(quantization: str) -> dict[str, str]:
    """`recursum doctor`'s report ("name: value" lines) for the model the server runs."""
    lines = subprocess.run([sys.executable, "-m", "recursum.service.cli.main", "doctor", "--quantization",
                            quantization], capture_output=True, text=True, check=True).stdout.splitlines()
    return {name.strip(): value.strip() for name, _, value in (line.partition(":") for line in lines)}


def whole_book(server: BenchServer, options: dict, book: str, chars: int | None, quantization: str) -> None:
    text = shared_path(f"books/{book}").read_text()[:chars]
    probe = doctor_probe(quantization)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        before, started = tokens(server), time.monotonic()
        job = Job(http, text, options, ALICE)
        etas: dict[int, tuple[float, float]] = {}  # percent -> (when, eta)
        total = None
        while job.poll()["status"] not in ENDED:
            total = total or sum(h["total"] for h in job.status["progress"]) or None
            for percent in (25, 50, 75):
                if total and percent not in etas and job.nodes_done >= total * percent / 100 \
                        and job.status.get("eta_seconds") is not None:
                    etas[percent] = (time.monotonic(), job.status["eta_seconds"])
            time.sleep(0.5)
        seconds = time.monotonic() - started
        generated = server.metric("recursum_generated_tokens_total")
        prefill_s, decode_s = (server.metric("recursum_generation_prefill_seconds_sum"),
                               server.metric("recursum_generation_decode_seconds_sum"))
        prompt = server.metric("recursum_prompt_tokens_total")
        rate = (tokens(server) - before) / seconds
    print(f"whole book {book} ({len(text):,} chars): {seconds:.0f} s, {rate:.1f} tokens/s; prefill "
          f"{prompt / prefill_s:.0f} tok/s vs the probe's {float(probe['prefill_tokens_per_second']):.0f}, "
          f"decode {generated / decode_s:.1f} tok/s (all rows) vs the probe's "
          f"{float(probe['decode_tokens_per_second']):.1f} (one row)")
    for percent, (when, eta) in sorted(etas.items()):
        remaining = job.ended - when
        print(f"  ETA at {percent}%: {eta:.0f} s, really {remaining:.0f} s ({eta / remaining:.2f}x)")


def serve(args, baseline: Path | None = None) -> BenchServer:
    env = {}
    if baseline is not None:  # the old code first on the path, ahead of the editable install
        shim = Path(tempfile.mkdtemp(prefix="recursum-baseline-")) / "recursum"
        shim.mkdir()
        for package in ("schemas", "clients", "service", "training"):
            (shim / package).symlink_to(baseline.resolve() / package)
        env["PYTHONPATH"] = str(shim.parent)
    log = Path(tempfile.mkdtemp(prefix="recursum-service-")) / "server.log"
    print(f"server log: {log}")
    return BenchServer(None, args.quantization, env, api_keys=KEYS, log=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-chars", type=int, default=2000)
    parser.add_argument("--large-chars", type=int, default=60000)
    parser.add_argument("--mixed-chars", type=int, default=6000, help="each of the mixed workload's jobs")
    parser.add_argument("--book", default="alice_in_wonderland.txt")
    parser.add_argument("--book-chars", type=int, default=None, help="the book's first N characters")
    parser.add_argument("--summary-tokens", type=int, default=128)
    parser.add_argument("--baseline-src", type=Path, help="a checkout of the code to compare throughput with")
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "int8", "none"])
    add_smoke_flag(parser)
    args = apply_smoke(parser.parse_args(), small_chars=300, large_chars=1500, mixed_chars=300,
                       book_chars=1500, summary_tokens=16, quantization="none")  # loads faster than nf4
    options = {"summary_tokens": args.summary_tokens}
    small = excerpts("pride_and_prejudice.txt", [args.small_chars] * 2)
    large, *mixed = excerpts("frankenstein.txt", [args.large_chars] + [args.mixed_chars] * 6)

    server = serve(args)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            small_under_load(http, options, small, large)
        rate = mixed_workload(server, options, mixed, "node scheduler")
        whole_book(server, options, args.book, args.book_chars, args.quantization)
    finally:
        server.stop()
    if args.baseline_src is not None:
        old = serve(args, args.baseline_src)
        try:
            print(f"baseline ({args.baseline_src}):")
            with httpx.Client(base_url=old.url, timeout=60) as http:
                small_under_load(http, options, small, large)
            old_rate = mixed_workload(old, options, mixed, f"baseline ({args.baseline_src})")
        finally:
            old.stop()
        print(f"throughput: {rate / old_rate:.2f}x the baseline's")


if __name__ == "__main__":
    main()
