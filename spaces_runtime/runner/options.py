"""The runner's knobs, read once from the Settings object at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spaces_runtime.config import Settings
from spaces_runtime.runner.batching import BatchLimits


def socket_path(settings: Settings) -> Path:
    """The runner's socket, alone in a directory of its own (``{data_dir}/runner/`` by default): that directory is
    what containers get mounted, so it must never show an app the platform's data. An explicit
    ``runner_socket`` is taken as given: put it in a directory of its own."""
    return Path(settings.runner_socket_path)


@dataclass(frozen=True)
class RunnerOptions:
    socket_path: Path
    models_dir: Path  # uploaded TorchScript / torch.export files, shared by every app
    secret_path: Path  # signs app tokens (see tokens.app_token)
    tcp_host: str = "127.0.0.1"
    tcp_port: int | None = None
    device: str = "auto"
    threads: int | None = None
    budget_bytes: int = 4096 * 2**20
    pinned: tuple[str, ...] = ()
    limits: BatchLimits = field(default_factory=BatchLimits)
    quota_device_s: float | None = None  # per app and window; None: unlimited
    quota_window_s: float = 60.0
    default_deadline_s: float = 60.0
    max_payload_bytes: int = 32 * 2**20
    max_model_bytes: int = 512 * 2**20
    max_lease_s: float = 300.0
    preload: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RunnerOptions:
        data_dir = Path(settings.data_dir)
        limits = BatchLimits(
            max_batch_items=settings.runner_max_batch, max_delay_s=settings.runner_max_delay_ms / 1000,
            max_queue_items=settings.runner_max_queue, max_queue_items_per_app=settings.runner_max_queue_per_app)
        values: dict[str, Any] = dict(
            socket_path=socket_path(settings), models_dir=data_dir / "models",
            secret_path=data_dir / "runner.secret", tcp_port=settings.runner_tcp_port,
            tcp_host=settings.runner_tcp_host, device=settings.runner_device, threads=settings.runner_threads,
            budget_bytes=int(settings.runner_memory_budget_mb) * 2**20, pinned=tuple(settings.runner_pinned),
            limits=limits, quota_device_s=settings.runner_quota_device_s,
            quota_window_s=settings.runner_quota_window_s,
            max_payload_bytes=int(settings.runner_max_payload_mb * 2**20), preload=tuple(settings.runner_preload))
        values.update(overrides)
        return cls(**values)
