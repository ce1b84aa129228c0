"""``python -m spaces_runtime.runner``: the runner alone (what `spaces runner` starts), until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

from spaces_runtime.config import Settings
from spaces_runtime.runner.batching import BatchLimits
from spaces_runtime.runner.server import RunnerService


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="spaces runner", description="Serve models to apps from one process.")
    p.add_argument("--data-dir")
    p.add_argument("--socket", help="Unix socket path (default {data_dir}/runner.sock)")
    p.add_argument("--tcp-port", type=int)
    p.add_argument("--tcp-host", help="address the TCP port listens on (default 127.0.0.1)")
    p.add_argument("--secret-file", help="the key app tokens are signed with (default {data_dir}/runner.secret)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--budget-mb", type=int, help="memory budget for resident models")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-delay-ms", type=float, default=4.0)
    p.add_argument("--max-queue", type=int, default=1024)
    p.add_argument("--max-queue-per-app", type=int, default=256)
    p.add_argument("--quota-device-s", type=float, help="device-seconds per app and window")
    p.add_argument("--quota-window-s", type=float, default=60.0)
    p.add_argument("--max-payload-mb", type=float, default=32)
    p.add_argument("--threads", type=int)
    p.add_argument("--preload", nargs="*", default=[])
    return p.parse_args(argv)


def service_from(args: argparse.Namespace) -> RunnerService:
    fields: dict[str, Any] = {k: v for k, v in {
        "data_dir": args.data_dir, "runner_socket": args.socket, "runner_tcp_port": args.tcp_port,
        "runner_device": args.device, "runner_memory_budget_mb": args.budget_mb,
        "runner_tcp_host": args.tcp_host}.items() if v is not None}
    settings = Settings(**fields)
    limits = BatchLimits(args.max_batch, args.max_delay_ms / 1000, args.max_queue, args.max_queue_per_app)
    secret = {"secret_path": Path(args.secret_file)} if args.secret_file else {}
    return RunnerService(settings, limits=limits, quota_device_s=args.quota_device_s,
                         quota_window_s=args.quota_window_s, max_payload_bytes=int(args.max_payload_mb * 2**20),
                         threads=args.threads, preload=tuple(args.preload), **secret)


async def serve(service: RunnerService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # handlers only set a flag; shutdown runs below
    await service.start()
    print(f"runner listening on {service.url}", flush=True)
    await stop.wait()
    await service.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(service_from(parse(argv))))


if __name__ == "__main__":
    main()
