"""What a decompression bomb costs the server: an upload of a few MB that declares GiBs, refused by the streaming
member checks (spaces_runtime.appfiles) vs decompressed whole before sizes are summed (how uploads were checked
before: every member read, then the total compared). CPU seconds of this process, side by side in one run.

    .venv/bin/python bench/bench_uploads.py [--declared-gib 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from spaces_runtime.appfiles import Totals, UploadLimits, unpack_stream
from spaces_runtime.config import Settings
from spaces_runtime.errors import UploadTooLargeError

_DEFAULTS = Settings()  # the platform's own limits
LIMITS = UploadLimits(_DEFAULTS.max_upload_bytes, _DEFAULTS.max_unpacked_bytes, _DEFAULTS.max_upload_files)
MEMBER = 64 * 1024 * 1024


def bomb(declared: int) -> bytes:
    """A gzip'd tar of zero-filled members: tiny on the wire, ``declared`` bytes unpacked."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as zipped, \
            tarfile.open(fileobj=zipped, mode="w|") as tar:
        zeros = b"\0" * MEMBER
        for i in range(declared // MEMBER):
            info = tarfile.TarInfo(f"zeros{i}.bin")
            info.size = MEMBER
            tar.addfile(info, io.BytesIO(zeros))
    return raw.getvalue()


def streaming(data: bytes, scratch: Path) -> float:
    start = time.process_time()
    with contextlib.suppress(UploadTooLargeError):
        unpack_stream(io.BytesIO(data), scratch / "out", LIMITS, Totals())
    return time.process_time() - start


def decompress_first(data: bytes) -> float:
    """Every member read before the sizes are summed."""
    start = time.process_time()
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            source = tar.extractfile(member)
            while source is not None and source.read(1024 * 1024):
                pass
            total += member.size
    assert total > LIMITS.max_unpacked_bytes
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declared-gib", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = bomb(int(args.declared_gib * 1024 ** 3))
    rows: list[tuple[float, float]] = []
    for _ in range(args.rounds):  # interleaved, so other work on the machine weighs on both alike
        scratch = Path(tempfile.mkdtemp())
        try:
            rows.append((streaming(data, scratch), decompress_first(data)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    best_stream, best_whole = min(r[0] for r in rows), min(r[1] for r in rows)
    table = Table(title=f"decompression bomb: {len(data) / 1e6:.1f} MB upload declaring {args.declared_gib:g} GiB "
                        f"(limit {LIMITS.max_unpacked_bytes // 2 ** 20} MiB), best of {args.rounds}")
    for column in ("check", "CPU s", "ratio"):
        table.add_column(column)
    table.add_row("streaming (appfiles)", f"{best_stream:.3f}", f"{best_stream / best_whole:.3f}x")
    table.add_row("decompress first (before)", f"{best_whole:.3f}", "1.000x")
    Console().print(table)


if __name__ == "__main__":
    main()
