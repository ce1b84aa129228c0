"""The runner's knobs, read once from the Settings object at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spaces_runtime.runner.batching import BatchLimits


@dataclass(frozen=True)
class RunnerOptions:
    socket_path: Path
    models_dir: Path  # uploaded TorchScript / torch.export files, shared by every app
    secret_path: Path  # signs app tokens (see appkit.app_token)
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
    def from_settings(cls, settings: Any, **overrides: Any) -> RunnerOptions:
        """Settings fields beyond config.py's current ones are read with defaults until they exist there."""
        data_dir = Path(settings.data_dir)
        def opt(name: str, default: Any) -> Any:
            return getattr(settings, name, default)

        limits = BatchLimits(
            max_batch_items=opt("runner_max_batch", 32), max_delay_s=opt("runner_max_delay_ms", 4) / 1000,
            max_queue_items=opt("runner_max_queue", 1024),
            max_queue_items_per_app=opt("runner_max_queue_per_app", 256))
        values: dict[str, Any] = dict(
            socket_path=Path(settings.runner_socket_path), models_dir=data_dir / "models",
            secret_path=data_dir / "runner.secret", tcp_port=settings.runner_tcp_port,
            tcp_host=opt("runner_tcp_host", "127.0.0.1"), device=settings.runner_device,
            threads=opt("runner_threads", None), budget_bytes=int(settings.runner_memory_budget_mb) * 2**20,
            pinned=tuple(opt("runner_pinned", ())), limits=limits,
            quota_device_s=opt("runner_quota_device_s", None), quota_window_s=opt("runner_quota_window_s", 60.0),
            max_payload_bytes=opt("runner_max_payload_mb", 32) * 2**20,
            preload=tuple(opt("runner_preload", ())))
        values.update(overrides)
        return cls(**values)
