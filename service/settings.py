"""Service configuration, from environment variables only (so a container needs no config file).

    RECURSUM_DATABASE_URL   SQLAlchemy URL (default: SQLite under $RECURSUM_HOME)
    RECURSUM_API_KEYS       `name:secret:scope+scope` entries separated by commas; secrets of 32+ characters
    RECURSUM_DEV_MODE       1 to serve without keys (logged loudly), on loopback only; never with keys
    RECURSUM_ALLOWED_HOSTS  names the Host header may carry, comma-separated (default: any; in dev mode
                            127.0.0.1, localhost and ::1): no web page reaches the server by DNS rebinding
    RECURSUM_MAX_STREAMS, RECURSUM_MAX_STREAMS_PER_KEY, RECURSUM_STREAM_SECONDS   SSE streams open at once,
                            per key, and a stream's lifetime (256, 16, 3600)
    RECURSUM_LIMIT_CONCURRENCY connections and tasks before the server answers 503 (default 512)
    RECURSUM_HEADER_SECONDS seconds a client has to send a request's headers (default 10)
    RECURSUM_BODY_SECONDS   seconds a client has to send a request's body once its headers are in (default 60)
    RECURSUM_MAX_QUEUE      jobs queued or running before submissions get 429 (default 16)
    RECURSUM_MAX_BODY_BYTES request body limit (default 20 MB)
    RECURSUM_MAX_JOBS_PER_KEY jobs one key may have queued or running (default 4)
    RECURSUM_MAX_JOB_TOKENS estimated prompt + generated tokens one job may cost (default 4,000,000)
    RECURSUM_MAX_KEY_TOKENS estimated tokens of one key's unfinished jobs together (default 8,000,000)
    RECURSUM_MAX_ACTIVE_JOBS jobs generated together in shared batches (default 8; 1 = one at a time)
    RECURSUM_REPLICA_ID     this replica's name in job leases (default: the host name; unique per replica)
    RECURSUM_LEASE_SECONDS  how long a job lease lasts without renewal (default 30)
    RECURSUM_MAX_ATTEMPTS   claims of a job before it is failed as a poison job (default 3)
    RECURSUM_BATCH_MEMORY_MB memory one generation batch may take (default: a share of the free memory)
    RECURSUM_CALLBACK_HOSTS hosts (or host:port) that job-end callbacks may be sent to, comma-separated
    RECURSUM_CALLBACK_PRIVATE 1 to let callbacks reach loopback and private addresses (tests, one host)
    RECURSUM_CALLBACK_ATTEMPTS, RECURSUM_CALLBACK_FIRST_DELAY   attempts per callback and the first wait
                            between them, doubling after each (default 12 and 2 s: about 2 hours in all)
    RECURSUM_KEEP_COMPARISONS 0 to delete a job's comparisons (copies of what was judged) with the job
                            (default 1: they stay, as training data)
    RECURSUM_EVALUATION_LEASE_SECONDS how long a comparison task stays leased to its evaluator (default 900)
    RECURSUM_EVALUATION_OVERLAP distinct evaluators each pair goes to, to measure agreement (default 1)
    RECURSUM_GOLD_RATE      share of tasks that are gold items with a known answer (default 0.05; 0: none)
    RECURSUM_MODEL, RECURSUM_QUANTIZATION, RECURSUM_DEVICE   the model to serve
    RECURSUM_ADAPTERS       an adapter bundle directory, or none for the bare model (unset: the bundle
                            shipped with the embedded model, default_adapters/)
"""

import hashlib
import os
import socket
from typing import Literal

import msgspec

from recursum.service.engine.errors import ConfigError
from recursum.service.engine.models.spec import ModelSpec
from recursum.service.engine.pipeline.document import DEFAULT_MAX_BYTES
from recursum.service.jobs.broker import StreamLimits
from recursum.service.jobs.callback_targets import CallbackTargets

Scope = Literal["summarize", "evaluate", "admin"]
SCOPES: frozenset[str] = frozenset({"summarize", "evaluate", "admin"})


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as stored: its name (the job owner id), the sha256 of its secret, its scopes."""

    name: str
    secret_sha256: str
    scopes: frozenset[str]


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    api_keys: tuple[ApiKey, ...] = ()
    dev_mode: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # empty: any
    max_queue: int = 16
    max_jobs_per_key: int = 4
    max_job_tokens: int = 4_000_000
    max_key_tokens: int = 8_000_000
    max_active_jobs: int = 8
    replica_id: str = "local"
    lease_seconds: float = 30.0
    max_attempts: int = 3
    max_body_bytes: int = DEFAULT_MAX_BYTES
    model: ModelSpec = ModelSpec()
    readiness_probe_seconds: float = 60.0
    callback_hosts: frozenset[str] = frozenset()
    callback_private: bool = False
    callback_attempts: int = 12
    callback_first_delay: float = 2.0
    evaluation_lease_seconds: float = 900.0
    evaluation_overlap: int = 1
    gold_rate: float = 0.05
    keep_comparisons: bool = True
    streams: StreamLimits = StreamLimits()
    limit_concurrency: int = 512
    header_seconds: float = 10.0
    body_seconds: float = 60.0

    def callback_targets(self) -> CallbackTargets:
        """Where callbacks may go; host names compare lowercased, as URLs carry them."""
        return CallbackTargets(hosts=frozenset(host.lower() for host in self.callback_hosts),
                               allow_private=self.callback_private)


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def check_dev_mode(settings: ServiceSettings, bind_host: str) -> ServiceSettings:
    """Dev mode serves every caller as admin, so it is refused beside API keys and off loopback; it
    answers only Host names of loopback unless RECURSUM_ALLOWED_HOSTS says otherwise."""
    if not settings.dev_mode:
        return settings
    if settings.api_keys:
        raise ConfigError("dev mode serves without keys, but RECURSUM_API_KEYS is set: unset one of them")
    if bind_host not in LOOPBACK_NAMES:
        raise ConfigError(f"dev mode serves without keys, so it binds loopback only, not {bind_host}; "
                          "configure RECURSUM_API_KEYS to serve on other addresses")
    return msgspec.structs.replace(settings, allowed_hosts=settings.allowed_hosts or LOOPBACK_NAMES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


MIN_SECRET_LENGTH = 32  # a shorter secret can be guessed offline from a leaked digest, or online


def parse_api_keys(value: str, min_secret_length: int = 0) -> tuple[ApiKey, ...]:
    """`name:secret:scope+scope,...` → hashed keys; the error names the bad entry and the format. The
    service's start-up asks for `MIN_SECRET_LENGTH`; tests build short keys directly."""
    keys = []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, rest = entry.partition(":")
        secret, _, scopes = rest.partition(":")
        wanted = frozenset(filter(None, scopes.split("+")))
        if not name or not secret or not wanted or not wanted <= SCOPES:
            raise ConfigError(
                f"RECURSUM_API_KEYS entry {name or entry!r} must look like name:secret:summarize+evaluate "
                f"with scopes from {sorted(SCOPES)}"
            )
        if any(key.name == name for key in keys):
            raise ConfigError(f"RECURSUM_API_KEYS names {name!r} twice; a name owns jobs and signs their "
                              "callbacks, so each must be unique (rotate by adding a key under a new name)")
        if len(secret) < min_secret_length:
            raise ConfigError(
                f"RECURSUM_API_KEYS entry {name!r} has a secret of {len(secret)} characters; use at least "
                f"{min_secret_length}: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        keys.append(ApiKey(name=name, secret_sha256=hash_secret(secret), scopes=wanted))
    return tuple(keys)


def settings_from_env(environ: dict[str, str] | None = None) -> ServiceSettings:
    env = os.environ if environ is None else environ
    try:
        return ServiceSettings(
            database_url=env.get("RECURSUM_DATABASE_URL") or None,
            api_keys=parse_api_keys(env.get("RECURSUM_API_KEYS", ""), MIN_SECRET_LENGTH),
            dev_mode=_flag(env.get("RECURSUM_DEV_MODE", "")),
            allowed_hosts=frozenset(_names(env.get("RECURSUM_ALLOWED_HOSTS", ""))) - {"*"},
            streams=StreamLimits(total=int(env.get("RECURSUM_MAX_STREAMS", 256)),
                                 per_key=int(env.get("RECURSUM_MAX_STREAMS_PER_KEY", 16)),
                                 seconds=float(env.get("RECURSUM_STREAM_SECONDS", 3600))),
            limit_concurrency=int(env.get("RECURSUM_LIMIT_CONCURRENCY", 512)),
            header_seconds=float(env.get("RECURSUM_HEADER_SECONDS", 10)),
            body_seconds=float(env.get("RECURSUM_BODY_SECONDS", 60)),
            max_queue=int(env.get("RECURSUM_MAX_QUEUE", 16)),
            max_jobs_per_key=int(env.get("RECURSUM_MAX_JOBS_PER_KEY", 4)),
            max_job_tokens=int(env.get("RECURSUM_MAX_JOB_TOKENS", 4_000_000)),
            max_key_tokens=int(env.get("RECURSUM_MAX_KEY_TOKENS", 8_000_000)),
            max_active_jobs=max(1, int(env.get("RECURSUM_MAX_ACTIVE_JOBS", 8))),
            replica_id=env.get("RECURSUM_REPLICA_ID") or socket.gethostname(),
            lease_seconds=float(env.get("RECURSUM_LEASE_SECONDS", 30)),
            max_attempts=max(1, int(env.get("RECURSUM_MAX_ATTEMPTS", 3))),
            max_body_bytes=int(env.get("RECURSUM_MAX_BODY_BYTES", DEFAULT_MAX_BYTES)),
            callback_hosts=frozenset(_names(env.get("RECURSUM_CALLBACK_HOSTS", ""))),
            callback_private=_flag(env.get("RECURSUM_CALLBACK_PRIVATE", "")),
            callback_attempts=max(1, int(env.get("RECURSUM_CALLBACK_ATTEMPTS", 12))),
            callback_first_delay=float(env.get("RECURSUM_CALLBACK_FIRST_DELAY", 2)),
            evaluation_lease_seconds=float(env.get("RECURSUM_EVALUATION_LEASE_SECONDS", 900)),
            evaluation_overlap=max(1, int(env.get("RECURSUM_EVALUATION_OVERLAP", 1))),
            gold_rate=min(1.0, max(0.0, float(env.get("RECURSUM_GOLD_RATE", 0.05)))),
            keep_comparisons=_flag(env.get("RECURSUM_KEEP_COMPARISONS", "1")),
            model=msgspec.convert(
                {"base": env.get("RECURSUM_MODEL") or None,
                 "quantization": env.get("RECURSUM_QUANTIZATION", "nf4"),
                 "device": env.get("RECURSUM_DEVICE", "auto"),
                 "bundle": env.get("RECURSUM_ADAPTERS") or None,
                 "batch_memory_mb": int(env.get("RECURSUM_BATCH_MEMORY_MB") or 0) or None},
                ModelSpec,
            ),
        )
    except (ValueError, msgspec.ValidationError) as error:
        raise ConfigError(f"invalid service setting: {error}") from None
