"""Per-model counters the runner keeps, rendered as JSON and Prometheus text. Pure: no clocks, no I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class ModelStats:
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    batch_items: int = 0
    batch_hist: dict[int, int] = field(default_factory=lambda: dict.fromkeys(BATCH_BUCKETS, 0))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    compute_s: float = 0.0

    def record_batch(self, items: int, requests: int, compute_s: float) -> None:
        self.batches += 1
        self.batch_items += items
        self.compute_s += compute_s
        for bucket in BATCH_BUCKETS:
            if requests <= bucket:
                self.batch_hist[bucket] += 1
                break

    def record_request(self, latency_s: float, error_code: str | None = None) -> None:
        self.requests += 1
        self.latencies.append(latency_s)
        if error_code:
            self.errors[error_code] = self.errors.get(error_code, 0) + 1

    def quantiles(self) -> dict[str, float]:
        if not self.latencies:
            return {}
        ordered = sorted(self.latencies)
        return {f"p{round(q * 100)}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in QUANTILES}

    def max_batch(self) -> int:
        return max((b for b, n in self.batch_hist.items() if n), default=0)


def snapshot(stats: dict[str, ModelStats], depth: dict[str, int], memory: dict[str, Any]) -> dict[str, Any]:
    models = {}
    for name, s in stats.items():
        models[name] = {
            "queue_depth": depth.get(name, 0), "requests": s.requests, "errors": dict(s.errors),
            "batches": s.batches, "items": s.batch_items, "compute_s": round(s.compute_s, 4),
            "batch_size_histogram": {str(b): n for b, n in s.batch_hist.items()},
            "max_batch_requests": s.max_batch(), "latency_s": s.quantiles(),
        }
    return {"models": models, "device_memory": memory}


def prometheus_text(snap: dict[str, Any]) -> str:
    """Prometheus exposition format (text 0.0.4) for one snapshot; metric names start with spaces_runner_."""
    return prometheus_fleet({"": snap})


def prometheus_fleet(snaps: dict[str, dict[str, Any]]) -> str:
    """One exposition for several runners (the swarm's, one per node): every sample of a named runner carries
    ``node="NAME"``; each TYPE line appears once, as the format requires."""
    lines = ["# TYPE spaces_runner_queue_depth gauge", "# TYPE spaces_runner_requests_total counter",
             "# TYPE spaces_runner_batch_requests histogram", "# TYPE spaces_runner_latency_seconds summary"]
    for node, snap in snaps.items():
        lines += _model_samples(snap, f',node="{node}"' if node else "")
    lines.append("# TYPE spaces_runner_device_memory_bytes gauge")
    for node, snap in snaps.items():
        mem, where = snap["device_memory"], f',node="{node}"' if node else ""
        for key in ("resident_bytes", "budget_bytes", "device_allocated_bytes"):
            if mem.get(key) is not None:
                lines.append(f'spaces_runner_device_memory_bytes{{kind="{key}",device="{mem.get("device")}"'
                             f"{where}}} {mem[key]}")
    return "\n".join(lines) + "\n"


def _model_samples(snap: dict[str, Any], where: str) -> list[str]:
    lines = []
    for name, m in snap["models"].items():
        lab = f'model="{name}"{where}'
        lines.append(f"spaces_runner_queue_depth{{{lab}}} {m['queue_depth']}")
        lines.append(f"spaces_runner_requests_total{{{lab}}} {m['requests']}")
        for code, n in m["errors"].items():
            lines.append(f'spaces_runner_errors_total{{{lab},code="{code}"}} {n}')
        cumulative = 0
        for bucket, n in m["batch_size_histogram"].items():
            cumulative += n
            lines.append(f'spaces_runner_batch_requests_bucket{{{lab},le="{bucket}"}} {cumulative}')
        lines.append(f'spaces_runner_batch_requests_bucket{{{lab},le="+Inf"}} {m["batches"]}')
        lines.append(f"spaces_runner_batch_requests_count{{{lab}}} {m['batches']}")
        for q, v in m["latency_s"].items():
            lines.append(f'spaces_runner_latency_seconds{{{lab},quantile="0.{q[1:]}"}} {v:.6f}')
        lines.append(f"spaces_runner_compute_seconds_total{{{lab}}} {m['compute_s']}")
    return lines
