"""The worker subprocess: owns the device, keeps models resident, runs one batch at a time.

It speaks length-prefixed pickles over its stdin/stdout with the runner's front process (both ends are ours;
app payloads were validated into plain numpy/str before they got here). Run as
``python -m spaces_runtime.runner.worker``. Only this process imports torch.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

from spaces_runtime.errors import BadInputError, RunnerError
from spaces_runtime.runner.residency import Resident, choose_evictions

HEADER = struct.Struct("<Q")


def pack(msg: Any) -> bytes:
    body = pickle.dumps(msg, protocol=5)
    return HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO) -> Any | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    return pickle.loads(stream.read(size))


class Registry:
    """Resident models with LRU eviction under the memory budget; pinned ones stay."""

    def __init__(self, device: Any, budget_bytes: int, pinned: set[str]) -> None:
        self.device, self.budget, self.pinned = device, budget_bytes, set(pinned)
        self.models: dict[str, Any] = {}
        self.last_used: dict[str, float] = {}
        self.evictions = 0

    def get(self, spec: dict[str, Any]) -> Any:
        name = spec["name"]
        if name not in self.models:
            self.load(spec)
        self.last_used[name] = time.monotonic()
        return self.models[name]

    def load(self, spec: dict[str, Any]) -> None:
        from spaces_runtime.runner import handlers

        name = spec["name"]
        if name in self.models:
            return
        self._make_room(name, spec["size_bytes"])
        self.models[name] = handlers.load(spec, self.device)
        self.last_used[name] = time.monotonic()
        self._make_room(name, self.models[name].nbytes)  # the real size may exceed the file's

    def check(self, spec: dict[str, Any]) -> None:
        """Load an uploaded file once and drop it: a file that does not load is refused before it replaces
        a working model. Not kept, so not counted against the budget (it is freed at once)."""
        from spaces_runtime.runner import handlers

        try:
            handlers.load(spec, self.device)
        except Exception as exc:  # torch raises RuntimeError, ValueError, pickle errors... for a bad archive
            first = (str(exc).splitlines() or [""])[0][:300]
            raise BadInputError(f"the file does not load as {spec['format']}: {type(exc).__name__}: {first}",
                                hint="save it with torch.jit.save(torch.jit.script(model), path) or "
                                     "torch.export.save(program, path), with this runner's torch") from None
        finally:
            self._free_device()

    def unload(self, name: str) -> None:
        if self.models.pop(name, None) is not None:
            self.last_used.pop(name, None)
            self._free_device()

    def _make_room(self, name: str, nbytes: int) -> None:
        resident = [Resident(n, m.nbytes, self.last_used.get(n, 0.0)) for n, m in self.models.items()]
        for victim in choose_evictions(resident, name, nbytes, self.budget, frozenset(self.pinned)):
            self.unload(victim)
            self.evictions += 1

    def _free_device(self) -> None:
        import gc

        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def state(self) -> dict[str, Any]:
        resident = {n: m.nbytes for n, m in self.models.items()}
        return {"resident": resident, "pinned": sorted(self.pinned), "evictions": self.evictions,
                "memory": memory(self.device, sum(resident.values()), self.budget)}


def memory(device: Any, resident_bytes: int, budget: int) -> dict[str, Any]:
    import torch

    allocated = (torch.cuda.memory_allocated(device) if device.type == "cuda" else _rss_bytes())
    return {"device": str(device), "resident_bytes": resident_bytes, "budget_bytes": budget,
            "device_allocated_bytes": allocated}


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def default_threads() -> int:
    """One core fewer than the machine has: the front process needs one to keep answering, and OpenMP
    threads that lose their core to it spin (on 2 cores, 2 threads ran 30x slower than 1 under load)."""
    return max(1, (os.cpu_count() or 2) - 1)


def pick_device(wanted: str) -> Any:
    import torch

    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


def error_dict(exc: RunnerError) -> dict[str, Any]:
    """Errors cross the pipe as plain data: pickling an exception would drop its hint."""
    return {"error": True, "code": exc.code, "message": exc.message, "hint": exc.hint}


def handle(registry: Registry, msg: dict[str, Any]) -> dict[str, Any]:
    op = msg["op"]
    if op == "run":
        model = registry.get(msg["spec"])
        started = time.perf_counter()
        results = [error_dict(r) if isinstance(r, RunnerError) else r for r in model.run(msg["payloads"])]
        return {"results": results, "compute_s": time.perf_counter() - started}
    if op == "load":
        registry.load(msg["spec"])
        if msg.get("pin"):
            registry.pinned.add(msg["spec"]["name"])
    elif op == "check":
        registry.check(msg["spec"])
    elif op == "unload":
        registry.pinned.discard(msg["name"])
        registry.unload(msg["name"])
    elif op == "configure":
        registry.budget = int(msg.get("budget_bytes", registry.budget))
    return {}


def serve(stdin: BinaryIO, stdout: BinaryIO, config: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(int(config.get("threads") or default_threads()))
    registry = Registry(pick_device(config.get("device", "auto")), int(config["budget_bytes"]),
                        set(config.get("pinned", ())))
    stdout.write(pack({"id": 0, "ok": True, "state": registry.state(), "pid": os.getpid()}))
    stdout.flush()
    reported: tuple[Any, float] = (None, 0.0)
    while (msg := read_frame(stdin)) is not None:
        try:
            reply = {"id": msg["id"], "ok": True, **handle(registry, msg)}
        except RunnerError as exc:
            reply = {"id": msg["id"], "ok": False, "error": error_dict(exc)}
        except Exception as exc:  # a model crashed on this batch: report it, keep serving the others
            traceback.print_exc(file=sys.stderr)
            reply = {"id": msg["id"], "ok": False,
                     "error": error_dict(RunnerError(f"the model failed: {type(exc).__name__}: {exc}"))}
        reported = _attach_state(registry, msg, reply, reported)
        stdout.write(pack(reply))
        stdout.flush()


def _attach_state(registry: Registry, msg: dict[str, Any], reply: dict[str, Any],
                  reported: tuple[Any, float]) -> tuple[Any, float]:
    """The state rides on a reply when it changed (or once a second for memory figures), not on every run."""
    signature = (tuple(registry.models), registry.evictions, tuple(sorted(registry.pinned)))
    now = time.monotonic()
    if msg.get("op") == "run" and signature == reported[0] and now - reported[1] < 1.0:
        return reported
    reply["state"] = registry.state()
    return signature, now


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # libraries that print must not corrupt the frames on stdout
    config = read_frame(stdin)
    if config is None:
        return
    serve(stdin, stdout, config)


if __name__ == "__main__":
    main()
