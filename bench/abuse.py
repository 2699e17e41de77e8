"""Abuse against a real `recursum serve` on loopback with two API keys (alice, bob): a combining-mark bomb,
an SSE flood from one key, slowloris connections, oversized and malformed bodies, and alice flooding the
queue while bob submits one small job. Every attack is bounded in count and time. A separate process probes
`/healthz` every 50 ms throughout; the table gives its latency during each phase. A 5xx answer, a lost job
or node, a dead server or a starved bob is a finding, printed as such at the end.

    python bench/abuse.py                         # default model: 500 SSE streams, 200 slowloris sockets
    python bench/abuse.py --sse-streams 1000 --slowloris 500 --flood 400
    python bench/abuse.py --smoke                 # every attack, a few of each (CI)
"""

import argparse
import asyncio
import itertools
import json
import math
import multiprocessing
import secrets
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _server import BenchServer, add_load_arguments, book_documents, summary_options
from _smoke import add_smoke_flag, apply_smoke

SUMMARIES = "/v1/summaries"
BOOK = "pride_and_prejudice.txt"
FINISHED = ("done", "failed", "cancelled")
PROBE_INTERVAL = 0.05  # seconds between one /healthz answer and the next probe
PROBE_TIMEOUT = 2.0  # a slower probe counts as failed (a kubelet gives up after 1 s by default)
FLOOD_CONNECTIONS = 4  # alice's submissions in flight at once
BOB_HEAD_START = 1.0  # seconds alice floods before bob submits
RETRY_CAP = 2.0  # bob honours Retry-After up to this many seconds, so the phase stays bounded
SLOW_REQUEST = b"POST /v1/summaries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nX-Slow: "

Sample = tuple[float, float | None]  # (monotonic time of the probe, its latency in seconds, None: failed)


@dataclass(frozen=True)
class Key:
    """One API key; its name owns the jobs it submits."""

    name: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}

    @property
    def entry(self) -> str:
        """Its RECURSUM_API_KEYS entry."""
        return f"{self.name}:{self.secret}:summarize"


@dataclass
class Phase:
    """One attack's time window (to pick its /healthz samples) and what it saw."""

    name: str
    start: float
    end: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Attack:
    """What every phase shares: the server, the two keys, the jobs accepted so far (none may be lost by the
    end) and the findings."""

    server: BenchServer
    alice: Key
    bob: Key
    options: dict[str, int]
    jobs: dict[str, Key] = field(default_factory=dict)
    phases: list[Phase] = field(default_factory=list)
    findings: Counter[str] = field(default_factory=Counter)  # each with how often it happened

    @property
    def alive(self) -> bool:
        return self.server.process.poll() is None

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Times the phase; a transport error ends it as a finding instead of ending the bench, since the
        point is to report what the server did under attack."""
        current = Phase(name, time.monotonic())
        self.phases.append(current)
        print(f"[{name}] ...", flush=True)
        try:
            yield current
        except (httpx.HTTPError, OSError) as error:
            current.notes.append(f"ended early: {type(error).__name__}")
            self.findings[f"{name}: the attack broke off: {type(error).__name__}: {error}"] += 1
        finally:
            current.end = time.monotonic()
            for note in current.notes:
                print(f"[{name}] {note}", flush=True)
            if not self.alive:
                self.findings[f"{name}: the server exited with code {self.server.process.returncode}"] += 1

    def record(self, phase: str, what: str, response: httpx.Response, key: Key) -> None:
        """Remembers an accepted job for the final check; a 5xx is a finding."""
        if response.status_code == 202:
            self.jobs[response.json()["id"]] = key
        if response.status_code >= 500:
            self.findings[f"{phase}: {what} answered {response.status_code}: {response.text[:200]}"] += 1


def field_of(response: httpx.Response, name: str) -> str:
    """A field of a 200 answer, or the status that came instead (a 5xx is recorded where it is sent)."""
    return str(response.json()[name]) if response.status_code == 200 else f"HTTP {response.status_code}"


def counts(counter: Counter) -> str:
    return ", ".join(f"{name}: {count}" for name, count in sorted(counter.items(), key=str)) or "none"


def probe_healthz(url: str, stop: Event, samples: Connection) -> None:
    """Runs in its own process, so the attacks' Python work here cannot delay a probe (the GIL). Each probe
    opens a new connection, as a kubelet's does, so connection limits show; one client serves them all, so
    its set-up is not timed."""
    results: list[Sample] = []
    with httpx.Client(timeout=PROBE_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        samples.send("started")
        while not stop.is_set():
            started = time.monotonic()
            try:
                ok = http.get(f"{url}/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            results.append((started, time.monotonic() - started if ok else None))
            time.sleep(PROBE_INTERVAL)
    samples.send(results)


class HealthProbe:
    """The /healthz prober process, from its first probe until `stop` returns every sample."""

    def __init__(self, url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.stopping = context.Event()
        self.samples, sender = context.Pipe(duplex=False)
        self.process = context.Process(target=probe_healthz, args=(url, self.stopping, sender), daemon=True)
        self.process.start()
        self.samples.recv()

    def stop(self) -> list[Sample]:
        self.stopping.set()
        samples = self.samples.recv()
        self.process.join()
        return samples


def baseline(attack: Attack, seconds: float) -> None:
    with attack.phase("baseline") as phase:
        time.sleep(seconds)
        phase.notes.append(f"no attack for {seconds:.0f} s")


async def post_bomb(http: httpx.AsyncClient, text: str, as_json: bool) -> tuple[str, httpx.Response, float]:
    started = time.monotonic()
    if as_json:
        response = await http.post(SUMMARIES, json={"text": text})
    else:
        response = await http.post(SUMMARIES, content=text.encode(), headers={"Content-Type": "text/plain"})
    return ("JSON" if as_json else "text/plain"), response, time.monotonic() - started


async def bomb(attack: Attack, count: int, marks: int, seconds: float) -> None:
    """One base letter carrying `marks` combining accents: unbounded work for a normalizer that is not told
    the stream-safe limit. Half as text/plain, half as JSON (two decoding paths); waves of `count` at once
    until `seconds` are up, as an attacker would keep them coming."""
    text = "a" + "\u0301" * marks
    with attack.phase("combining-mark bomb") as phase:
        results: list[tuple[str, httpx.Response, float]] = []
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=attack.server.url, timeout=60,
                                     headers=attack.alice.headers) as http:
            while not results or time.monotonic() < deadline:
                results += await asyncio.gather(*(post_bomb(http, text, i % 2 == 1) for i in range(count)))
        for kind, response, _ in results:
            attack.record(phase.name, f"a {kind} bomb", response, attack.alice)
            if response.status_code < 400:
                attack.findings[f"{phase.name}: a {kind} bomb was accepted ({response.status_code})"] += 1
        statuses = Counter(f"{kind} {response.status_code}" for kind, response, _ in results)
        slowest = max(seconds for *_, seconds in results)
        phase.notes.append(f"{len(results)} bombs of {marks:,} marks, {count} at once: {counts(statuses)}; "
                           f"slowest {slowest:.2f} s")


async def open_stream(host: str, port: int, request: bytes, deadline: float) -> str:
    """One SSE subscriber on raw sockets (hundreds of them cost little here): how it ended."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                max(0.0, deadline - time.monotonic()))
    except (OSError, TimeoutError) as error:
        return f"connect failed ({type(error).__name__})"
    try:
        writer.write(request)
        try:
            status_line = await asyncio.wait_for(reader.readline(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return "no answer in time"
        status = status_line.split()[1].decode() if status_line else "closed before answering"
        if status != "200":
            return status
        with suppress(TimeoutError):  # the deadline, while the stream is open
            while (left := deadline - time.monotonic()) > 0:
                if not await asyncio.wait_for(reader.read(65536), left):
                    return "200, ended by the server"
        return "200, held open"
    except OSError as error:
        return f"reset ({type(error).__name__})"
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def sse_flood(attack: Attack, document: str, streams: int, seconds: float) -> None:
    """Alice subscribes `streams` times to one of her own running jobs, then cancels the job so it does
    not load the later phases."""
    with (attack.phase("SSE flood") as phase,
          httpx.Client(base_url=attack.server.url, timeout=60, headers=attack.alice.headers) as http):
        response = http.post(SUMMARIES, json={"text": document, "options": attack.options})
        attack.record(phase.name, "the stream target", response, attack.alice)
        if response.status_code != 202:
            phase.notes.append(f"the stream target was refused ({response.status_code}): no streams")
            return
        job_id = response.json()["id"]
        host, port = attack.address
        request = (f"GET {SUMMARIES}/{job_id}/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {attack.alice.secret}\r\nAccept: text/event-stream\r\n\r\n"
                   ).encode()
        deadline = time.monotonic() + seconds
        outcomes = Counter(await asyncio.gather(
            *(open_stream(host, port, request, deadline) for _ in range(streams))))
        accepted = sum(count for outcome, count in outcomes.items() if outcome.startswith("200"))
        phase.notes.append(f"SSE streams accepted: {accepted} of {streams} ({counts(outcomes)})")
        phase.notes.append(f"target job: {cancel_unfinished(attack, http, job_id)}")


def cancel_unfinished(attack: Attack, http: httpx.Client, job_id: str) -> str:
    status = field_of(http.get(f"{SUMMARIES}/{job_id}"), "status")
    if status in FINISHED:
        return f"{status} during the phase"
    outcome = field_of(http.delete(f"{SUMMARIES}/{job_id}"), "outcome")
    if outcome == "deleted":  # it finished just now: gone on purpose, not lost
        del attack.jobs[job_id]
    return f"{status} at the end, then {outcome}"


async def slow_client(host: str, port: int, started: float, deadline: float) -> tuple[str, float | None]:
    """Sends a request's head one byte a second, never finishing it: ('closed', when) once the server
    closes the connection or answers, ('open', None) if it never did by the deadline."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                max(0.0, deadline - time.monotonic()))
    except (OSError, TimeoutError):
        return "connect failed", None
    head = itertools.chain(SLOW_REQUEST, itertools.repeat(ord("a")))  # a header that never ends
    try:
        while (wait := min(1.0, deadline - time.monotonic())) > 0:
            writer.write(bytes([next(head)]))
            await writer.drain()
            with suppress(TimeoutError):
                await asyncio.wait_for(reader.read(4096), wait)  # b"" (closed) or an answer: it gave up
                return "closed", time.monotonic() - started
        return "open", None
    except OSError:
        return "closed", time.monotonic() - started
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def slowloris(attack: Attack, sockets: int, seconds: float) -> None:
    with attack.phase("slowloris") as phase:
        host, port = attack.address
        started = time.monotonic()
        results = await asyncio.gather(*(slow_client(host, port, started, started + seconds)
                                         for _ in range(sockets)))
        closed = sorted(when for outcome, when in results if outcome == "closed" and when is not None)
        kinds = Counter(outcome for outcome, _ in results)
        when = (f" (first after {closed[0]:.1f} s, median {statistics.median(closed):.1f} s)"
                if closed else "")
        phase.notes.append(f"{len(closed)} of {sockets} slow connections closed by the server{when}; "
                           f"{kinds['open']} still open after {seconds:.0f} s, "
                           f"{kinds['connect failed']} could not connect")


def body_cases(max_bytes: int, text: str, options: dict[str, int]) -> list[tuple[str, dict]]:
    """(what, httpx request arguments): bodies over the limit and bodies that are wrong in each way the
    three submission formats allow. All of them should get a 4xx; a 202 is fine where the body is valid."""
    huge = "x" * (max_bytes + 1000)
    chunk = b"y" * 65536
    plain = {"Content-Type": "text/plain"}
    file = ("book.txt", text.encode(), "text/plain")
    nested = '{"text": ' + json.dumps(text) + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    return [
        ("JSON over the body limit", {"json": {"text": huge}}),
        ("text/plain over the body limit", {"content": huge.encode(), "headers": plain}),
        ("chunked text/plain over the limit, no Content-Length",
         {"content": iter([chunk] * (max_bytes // len(chunk) + 2)), "headers": plain}),
        ("multipart file over the body limit", {"files": {"file": ("big.txt", huge.encode())}}),
        ("truncated JSON", {"content": b'{"text": "abc', "headers": {"Content-Type": "application/json"}}),
        ("JSON of the wrong types", {"json": {"text": 5, "title": ["x"]}}),
        ("JSON without text", {"json": {"title": "nothing"}}),
        ("JSON with an empty text", {"json": {"text": ""}}),
        ("JSON nested 100,000 deep", {"content": nested.encode(),
                                      "headers": {"Content-Type": "application/json"}}),
        ("invalid UTF-8 text/plain", {"content": b"abc \xff\xfe\xfa def", "headers": plain}),
        ("invalid UTF-8 inside JSON", {"content": b'{"text": "abc \xff def"}',
                                       "headers": {"Content-Type": "application/json"}}),
        ("JSON with \\u0000", {"json": {"text": text[:100] + "\u0000" + text[100:], "options": options}}),
        ("multipart with the title as a file part",
         {"files": {"file": file, "title": ("t.txt", b"title"), "options": (None, json.dumps(options))}}),
        ("multipart with the options as a file part",
         {"files": {"file": file, "options": ("o.json", b"{}")}}),
        ("multipart without a file part", {"files": {"title": (None, "no file")}}),
        ("multipart options that are not JSON", {"files": {"file": file, "options": (None, "{")}}),
        ("multipart options of the wrong type", {"files": {"file": file, "options": (None, "[1, 2]")}}),
        ("options: chunk_tokens -5", {"json": {"text": text, "options": {"chunk_tokens": -5}}}),
        ("options: unknown field", {"json": {"text": text, "options": {"temperature": 9}}}),
        ("options: summary_tokens as a string", {"json": {"text": text, "options": {"summary_tokens": "9"}}}),
        ("unsupported media type", {"content": b"<book/>", "headers": {"Content-Type": "application/xml"}}),
        ("no API key", {"json": {"text": text}, "headers": {"Authorization": ""}}),
        ("an unknown API key", {"json": {"text": text}, "headers": {"Authorization": "Bearer " + "z" * 40}}),
    ]


def send_body(attack: Attack, http: httpx.Client, what: str, request: dict) -> str:
    """The answer's status, or how the connection ended without one."""
    try:
        response = http.post(SUMMARIES, **request)
    except httpx.TransportError as error:  # a server may close on an oversized body, unanswered
        return f"no answer ({type(error).__name__})"
    attack.record("bad bodies", what, response, attack.alice)
    return str(response.status_code)


def bodies(attack: Attack, max_bytes: int, text: str, seconds: float) -> None:
    """Every case, in rounds until `seconds` are up (what an attacker repeats costs the server each time);
    a case once accepted is not sent again, since it would only queue jobs."""
    with (attack.phase("bad bodies") as phase,
          httpx.Client(base_url=attack.server.url, timeout=60, headers=attack.alice.headers) as http):
        answers: dict[str, Counter] = {}
        deadline = time.monotonic() + seconds
        rounds = 0
        while rounds == 0 or time.monotonic() < deadline:
            for what, request in body_cases(max_bytes, text, attack.options):
                if "202" not in answers.setdefault(what, Counter()):
                    answers[what][send_body(attack, http, what, request)] += 1
            rounds += 1
        for what, answer in answers.items():
            print(f"    {what}: {counts(answer)}", flush=True)
        total = sum(answers.values(), Counter())
        phase.notes.append(f"{rounds} rounds of {len(answers)} cases: {counts(total)}")


async def submit_until_accepted(attack: Attack, http: httpx.AsyncClient, text: str,
                                deadline: float) -> tuple[str | None, Counter]:
    """Bob submits, retrying a 429/503 after its Retry-After (capped), until accepted or out of time."""
    statuses: Counter = Counter()
    while time.monotonic() < deadline:
        response = await http.post(SUMMARIES, headers=attack.bob.headers,
                                   json={"text": text, "options": attack.options})
        attack.record("queue flood", "bob's submission", response, attack.bob)
        statuses[response.status_code] += 1
        if response.status_code == 202:
            return response.json()["id"], statuses
        if response.status_code not in (429, 503):
            break
        await asyncio.sleep(min(RETRY_CAP, float(response.headers.get("Retry-After", 1))))
    return None, statuses


async def bob_submits(attack: Attack, http: httpx.AsyncClient, text: str, deadline: float) -> str:
    """Bob's one small job while alice floods: accepted? done? how long from his first try?"""
    await asyncio.sleep(BOB_HEAD_START)
    started = time.monotonic()
    job_id, statuses = await submit_until_accepted(attack, http, text, deadline)
    if job_id is None:
        attack.findings[f"queue flood: bob's job was never accepted ({counts(statuses)})"] += 1
        return f"bob's job never accepted ({counts(statuses)})"
    accepted = time.monotonic() - started
    status = "queued"
    while time.monotonic() < deadline:
        status = field_of(await http.get(f"{SUMMARIES}/{job_id}", headers=attack.bob.headers), "status")
        if status in FINISHED:
            return (f"bob's job {status} {time.monotonic() - started:.1f} s after his first try "
                    f"(accepted after {accepted:.1f} s: {counts(statuses)})")
        await asyncio.sleep(0.5)
    attack.findings[f"queue flood: bob's job was still {status} when the phase ended"] += 1
    return f"bob's job not done: still {status} {time.monotonic() - started:.0f} s after his first try"


async def alice_floods(attack: Attack, http: httpx.AsyncClient, texts: list[str], deadline: float,
                       statuses: Counter) -> None:
    """One of alice's connections: submits the next document at once, again 0.1 s after a refusal."""
    while texts and time.monotonic() < deadline:
        response = await http.post(SUMMARIES, headers=attack.alice.headers,
                                   json={"text": texts.pop(), "options": attack.options})
        attack.record("queue flood", "alice's submission", response, attack.alice)
        statuses[response.status_code] += 1
        if response.status_code != 202:
            await asyncio.sleep(0.1)


async def queue_flood(attack: Attack, texts: list[str], bob_text: str, seconds: float) -> None:
    with attack.phase("queue flood") as phase:
        deadline = time.monotonic() + seconds
        alice: Counter = Counter()
        attempts = len(texts)
        async with httpx.AsyncClient(base_url=attack.server.url, timeout=60) as http:
            bob, *_ = await asyncio.gather(
                bob_submits(attack, http, bob_text, deadline),
                *(alice_floods(attack, http, texts, deadline, alice) for _ in range(FLOOD_CONNECTIONS)))
        phase.notes.append(f"alice's {attempts} submissions: {counts(alice)}")
        phase.notes.append(bob)


def missing_nodes(tree: dict) -> int:
    """Nodes a done tree refers to (its root, every node's children) that it does not hold."""
    held = {node["id"] for node in tree["nodes"]}
    wanted = {tree["root"], *(child for node in tree["nodes"] for child in node["children"])}
    return len(wanted - held)


def check_integrity(attack: Attack) -> tuple[int, int, Counter]:
    """Every job that got a 202 must still be there, and every done job's tree whole."""
    lost_jobs = lost_nodes = 0
    statuses: Counter = Counter()
    with httpx.Client(base_url=attack.server.url, timeout=60) as http:
        for job_id, key in attack.jobs.items():
            response = http.get(f"{SUMMARIES}/{job_id}", headers=key.headers)
            if response.status_code != 200:
                lost_jobs += 1
                attack.findings[f"check: job {job_id} of {key.name} answers {response.status_code}"] += 1
                continue
            status = response.json()["status"]
            statuses[status] += 1
            if status != "done":
                continue
            tree = http.get(f"{SUMMARIES}/{job_id}/tree", headers=key.headers)
            missing = missing_nodes(tree.json()) if tree.status_code == 200 else 1
            lost_nodes += missing
            if missing:
                attack.findings[f"check: done job {job_id} misses {missing} nodes ({tree.status_code})"] += 1
    return lost_jobs, lost_nodes, statuses


def healthz_figures(samples: list[Sample], phase: Phase) -> tuple[str, str, str]:
    """p50, p99 (nearest rank) of the probes that answered within the phase, and failed/all."""
    window = [latency for at, latency in samples if phase.start <= at < phase.end]
    answered = sorted(latency for latency in window if latency is not None)
    failed = f"{len(window) - len(answered)}/{len(window)}"
    if not answered:
        return "-", "-", failed
    p99 = answered[math.ceil(0.99 * len(answered)) - 1]
    return f"{statistics.median(answered) * 1000:.1f}", f"{p99 * 1000:.1f}", failed


def server_errors(log: Path) -> list[str]:
    """The exception line closing each traceback the server logged (the cause behind a 5xx)."""
    lines = log.read_text(errors="replace").splitlines()
    errors, inside = [], False
    for line in lines:
        if line.startswith("Traceback"):
            inside = True
        elif inside and line and not line[0].isspace():
            errors.append(line.strip())
            inside = False
    return errors


def print_table(attack: Attack, samples: list[Sample]) -> None:
    print(f"\n{'phase':<20} {'healthz p50 ms':>14} {'p99 ms':>8} {'failed probes':>14}  notes")
    for phase in attack.phases:
        p50, p99, failed = healthz_figures(samples, phase)
        print(f"{phase.name:<20} {p50:>14} {p99:>8} {failed:>14}  {'; '.join(phase.notes)}")


def documents(args: argparse.Namespace) -> tuple[str, list[str], str, str]:
    """The long SSE target, alice's flood documents, bob's, and the valid text of the body cases:
    consecutive excerpts, so no job finds another's nodes in the cache (bob's job must not be free)."""
    size = args.sse_doc_chars + (args.flood + 2) * args.doc_chars
    text = book_documents(BOOK, 1, 1, size)[0][0]
    small = [text[args.sse_doc_chars + i * args.doc_chars:][: args.doc_chars] for i in range(args.flood + 2)]
    return text[: args.sse_doc_chars], small[:-2], small[-2], small[-1]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-seconds", type=float, default=5)
    parser.add_argument("--bombs", type=int, default=8, help="concurrent combining-mark bombs")
    parser.add_argument("--marks", type=int, default=200_000, help="combining marks in one bomb")
    parser.add_argument("--bomb-seconds", type=float, default=5, help="waves of bombs until then")
    parser.add_argument("--sse-streams", type=int, default=500)
    parser.add_argument("--sse-seconds", type=float, default=15, help="how long the streams stay open")
    parser.add_argument("--sse-doc-chars", type=int, default=20_000, help="the SSE target job's document")
    parser.add_argument("--slowloris", type=int, default=200, help="slow connections")
    parser.add_argument("--slowloris-seconds", type=float, default=20)
    parser.add_argument("--max-body-bytes", type=int, default=2_000_000, help="the server's body limit")
    parser.add_argument("--bodies-seconds", type=float, default=5, help="rounds of bad bodies until then")
    parser.add_argument("--flood", type=int, default=200, help="alice's submissions in the queue flood")
    parser.add_argument("--flood-seconds", type=float, default=120, help="bound on the queue flood phase")
    parser.add_argument("--max-queue", type=int, default=16, help="the server's RECURSUM_MAX_QUEUE")
    parser.add_argument("--header-seconds", type=float, default=10,
                        help="the server's RECURSUM_HEADER_SECONDS (its default: 10)")
    add_load_arguments(parser, doc_chars=300, chunk_tokens=100, summary_tokens=16)
    add_smoke_flag(parser)
    return apply_smoke(parser.parse_args(), baseline_seconds=1, bombs=2, bomb_seconds=1, sse_streams=20,
                       sse_seconds=3, sse_doc_chars=3000, slowloris=10, slowloris_seconds=3, bodies_seconds=1,
                       flood=10, flood_seconds=30, max_queue=4, doc_chars=200, header_seconds=1)


def main() -> None:
    args = parse_arguments()
    sse_document, flood_texts, bob_text, body_text = documents(args)
    alice, bob = Key("alice", secrets.token_hex(20)), Key("bob", secrets.token_hex(20))
    log = Path(tempfile.mkdtemp(prefix="recursum-abuse-")) / "server.log"
    server = BenchServer(None, args.quantization, {"RECURSUM_MAX_BODY_BYTES": str(args.max_body_bytes),
                                                   "RECURSUM_MAX_QUEUE": str(args.max_queue),
                                                   "RECURSUM_HEADER_SECONDS": str(args.header_seconds)},
                         api_keys=f"{alice.entry},{bob.entry}", log=log)
    attack = Attack(server, alice, bob, summary_options(args))
    phases = [lambda: baseline(attack, args.baseline_seconds),
              lambda: asyncio.run(bomb(attack, args.bombs, args.marks, args.bomb_seconds)),
              lambda: asyncio.run(sse_flood(attack, sse_document, args.sse_streams, args.sse_seconds)),
              lambda: asyncio.run(slowloris(attack, args.slowloris, args.slowloris_seconds)),
              lambda: bodies(attack, args.max_body_bytes, body_text, args.bodies_seconds),
              lambda: asyncio.run(queue_flood(attack, flood_texts, bob_text, args.flood_seconds))]
    try:
        probe = HealthProbe(server.url)
        for run_phase in phases:
            if attack.alive:  # once the server is dead, the rest would only measure connection errors
                run_phase()
        samples = probe.stop()
        integrity = check_integrity(attack) if attack.alive else None
    finally:
        server.stop()
    print_table(attack, samples)
    if integrity is None:
        print("\nlost jobs and nodes: not known, the server died")
    else:
        lost_jobs, lost_nodes, statuses = integrity
        print(f"\n{len(attack.jobs)} accepted jobs at the end: {counts(statuses)}")
        print(f"lost jobs: {lost_jobs}")
        print(f"lost nodes: {lost_nodes}")
    errors = server_errors(log)
    print(f"server log: {log} ({len(errors)} tracebacks)")
    attack.findings.update(f"server raised {error}" for error in errors)
    print("findings:" if attack.findings else "findings: none")
    for finding, times in attack.findings.items():
        print(f"  FINDING {finding}" + (f" ({times} times)" if times > 1 else ""))


if __name__ == "__main__":
    main()
