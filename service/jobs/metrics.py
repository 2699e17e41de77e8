"""Engine metrics (prometheus-client). Labels stay bounded: roles, heights, statuses; never job ids."""

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from recursum.schemas.tree import Node
from recursum.service.engine.interface import Engine
from recursum.service.engine.pipeline.results import RunStats

_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class EngineMetrics:
    """One set per app, in its own registry, so tests can build many apps in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("recursum_queue_depth", "Jobs queued or running.", registry=r)
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
        self.model = Info("recursum_model", "The loaded model.", registry=r)

    def observe_model(self, engine: Engine) -> None:
        info = engine.info
        self.model_load.set(engine.load_seconds)
        self.model.info({"base": Path(info.base).name, "quantization": info.quantization, "dtype": info.dtype,
                         "device": info.device, "adapters": ",".join(sorted(info.adapters)) or "none"})

    def observe_node(self, node: Node) -> None:
        if not node.cached:
            self.nodes.labels(role=node.role, height=str(node.height)).inc()

    def observe_run(self, stats: RunStats) -> None:
        generation = stats.generation
        self.prompt_tokens.inc(generation.prompt_tokens)
        self.generated_tokens.inc(generation.generated_tokens)
        for size, seconds in zip(generation.batch_sizes, generation.batch_seconds, strict=True):
            self.batch_size.observe(size)
            self.batch_duration.observe(seconds)
        self.cache_hits.inc(stats.cache_hits)
        self.cache_misses.inc(stats.cache_misses)
