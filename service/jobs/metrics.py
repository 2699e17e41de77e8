"""Engine metrics (prometheus-client). Labels stay bounded: roles, heights, statuses; never job ids.

Tokens, batches and nodes are counted as each batch and node finishes, so a book that runs for an hour
shows its throughput while it runs, not at its end.
"""

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from recursum.schemas.tree import Node
from recursum.service.engine.interface import Engine
from recursum.service.engine.pipeline.results import BatchRecord

_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_TOKEN_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class EngineMetrics:
    """One set per app, in its own registry, so tests can build many apps in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("recursum_queue_depth", "Jobs queued or running.", registry=r)
        self.jobs_by_state = Gauge("recursum_jobs_unfinished", "Jobs waiting or running, all replicas.",
                                   ["state"], registry=r)
        self.leased_jobs = Gauge("recursum_leased_jobs", "Jobs this replica is running (for autoscaling).",
                                 registry=r)
        self.queue_wait = Histogram("recursum_queue_wait_seconds", "From submit to the job's start.",
                                    buckets=_SECONDS, registry=r)
        self.lease_takeovers = Counter("recursum_lease_takeovers_total",
                                       "Running jobs another replica took over.", registry=r)
        self.failures = Counter("recursum_job_failures_total", "Jobs that failed, by reason.", ["reason"],
                                registry=r)
        self.callbacks = Counter("recursum_callback_deliveries_total", "Callback attempts, by outcome.",
                                 ["outcome"], registry=r)
        self.prefill = Histogram("recursum_generation_prefill_seconds", "Prefill time of one generate call.",
                                 buckets=_SECONDS, registry=r)
        self.decode = Histogram("recursum_generation_decode_seconds", "Decode time of one generate call.",
                                buckets=_SECONDS, registry=r)
        self.token_seconds = Histogram("recursum_time_per_output_token_seconds",
                                       "Decode time per step of one generate call.", buckets=_TOKEN_SECONDS,
                                       registry=r)
        self.evaluation_tasks_waiting = Gauge(
            "recursum_evaluation_tasks_waiting", "Comparison tasks offered, unanswered and held by no one.",
            registry=r)
        self.evaluation_leases_expired = Gauge(
            "recursum_evaluation_leases_expired", "Evaluators' leases that ran out unanswered, all time.",
            registry=r)
        self.pending_reports = Gauge("recursum_pending_reports", "Helper reports waiting, all replicas.",
                                     registry=r)
        self.report_latency = Histogram("recursum_report_latency_seconds",
                                        "From a generated report's request to its answer.", buckets=_SECONDS,
                                        registry=r)
        self.truncated = Counter("recursum_truncated_prompts_total", "Prompts cut to fit the model's window.",
                                 registry=r)
        self.jobs = Counter("recursum_jobs_total", "Jobs that ended, by final status.", ["status"],
                            registry=r)
        self.nodes = Counter("recursum_nodes_generated_total", "Summary nodes finished.",
                             ["role", "height"], registry=r)
        self.prompt_tokens = Counter("recursum_prompt_tokens_total", "Prompt tokens read.", registry=r)
        self.generated_tokens = Counter("recursum_generated_tokens_total", "Tokens generated.",
                                        registry=r)
        self.batch_size = Histogram("recursum_generation_batch_size", "Sequences per generate call.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.batch_duration = Histogram("recursum_generation_batch_duration_seconds",
                                        "Wall time of one generate call.", buckets=_SECONDS, registry=r)
        self.time_to_first_node = Histogram("recursum_time_to_first_node_seconds",
                                            "From job start to its first finished node.",
                                            buckets=_SECONDS, registry=r)
        self.job_duration = Histogram("recursum_job_duration_seconds", "Wall time of a job run.",
                                      buckets=_SECONDS, registry=r)
        self.cache_hits = Counter("recursum_node_cache_hits_total", "Nodes reused from the store.",
                                  registry=r)
        self.cache_misses = Counter("recursum_node_cache_misses_total", "Nodes that had to be generated.",
                                    registry=r)
        self.model_load = Gauge("recursum_model_load_seconds", "Time to load the model.", registry=r)
        self.model = Info("recursum_model", "The loaded model and the adapter bundle new work uses.",
                          registry=r)
        self.adapter_switches = Counter(
            "recursum_adapter_switches_total",
            "Adapter bundle switches on this replica: activated here, followed from the store, refused "
            "(invalid), failed (activated elsewhere, not loadable here).", ["outcome"], registry=r)

    def observe_model(self, engine: Engine) -> None:
        info = engine.info
        self.model_load.set(engine.load_seconds)
        self.model.info({"base": Path(info.base).name, "quantization": info.quantization, "dtype": info.dtype,
                         "device": info.device, "adapters": ",".join(sorted(info.adapters)) or "none",
                         "bundle": info.bundle})

    def observe_node(self, node: Node) -> None:
        if node.composed:
            return
        if node.cached:
            self.cache_hits.inc()
        else:
            self.cache_misses.inc()
            self.nodes.labels(role=node.role, height=str(node.height)).inc()

    def observe_batch(self, batch: BatchRecord) -> None:
        """Called from the worker thread as each generate call finishes (summaries and reports alike)."""
        self.prompt_tokens.inc(batch.prompt_tokens)
        self.generated_tokens.inc(batch.generated_tokens)
        self.batch_size.observe(batch.sequences)
        self.batch_duration.observe(batch.prefill_seconds + batch.decode_seconds)
        self.prefill.observe(batch.prefill_seconds)
        self.decode.observe(batch.decode_seconds)
        if batch.decode_steps:
            self.token_seconds.observe(batch.decode_seconds / batch.decode_steps)
        self.truncated.inc(batch.truncated)
