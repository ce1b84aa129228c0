"""Old Spaces: how many of the era apps of tests/era_apps.py work directly vs through the platform.

Run: .venv/bin/python bench/bench_eras.py [--direct] [--platform] [--platform-env K=V ...] [--out FILE]

  direct today   a fresh virtualenv with the SDK pin and requirements.txt resolved as of today, `python app.py`
  direct era     the same resolved with `uv pip install --exclude-newer` at the SDK release (+1 day)
  platform       `spaces serve` (process backend) deploys all of them; RUNNING, and the answers through the
                 gateway equal the direct era run's (named endpoints and outputs; Streamlit's rendered elements)
  --build-cost   VenvBuilder.build of each app with era resolution on and off (--cold: each into an empty uv
                 cache, so downloads count), and the index lookup of the SDK's release date alone
For each: works yes/no, the first line of why not, and the seconds the build took (uv's cache warm or not, as the
machine is: run it twice to see both).
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import httpx  # noqa: E402
from era_apps import APPS, EraApp, direct_venv, probe, running_directly  # noqa: E402

from builder import plan as build_plan  # noqa: E402
from builder import spec as build_spec  # noqa: E402
from builder.pythons import discover  # noqa: E402
from builder.releases import release_time  # noqa: E402
from builder.venv import VenvBuilder  # noqa: E402
from spaces_harness import Platform, free_port  # noqa: E402
from spaces_runtime.config import Settings  # noqa: E402

MEASURED = APPS  # the test suite's era apps


def python_for(app: EraApp) -> str:
    wanted = app.python_version or "3.11"
    for found in discover(Settings()):
        if found.minor_version == wanted:
            return str(found.path)
    raise RuntimeError(f"no Python {wanted} on this host")


def era_date(app: EraApp) -> str:
    return (release_time(app.sdk, app.sdk_version) + timedelta(days=1)).strftime("%Y-%m-%d")


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error:" in line]
    return (errors[-1] if errors else lines[-1] if lines else "")[:110]


def direct(app: EraApp, scratch: Path, era: bool) -> tuple[dict[str, Any] | None, str, float]:
    folder = app.write(scratch / f"{app.name}-{'era' if era else 'today'}" / "app")
    venv = folder.parent / "venv"
    started = time.monotonic()
    built = direct_venv(app, venv, python_for(app), era_date(app) if era else None)
    seconds = time.monotonic() - started
    if built.returncode != 0:
        return None, f"install: {first_line(built.stderr)}", seconds
    try:
        with running_directly(app, folder, venv, free_port()) as url:
            answer = probe(app, venv / "bin" / "python", url)
    except RuntimeError as exc:
        return None, f"run: {first_line(str(exc))}", seconds
    if answer.get("exceptions"):
        return None, f"run: {answer['exceptions'][0][:100]}", seconds
    return answer, "", seconds


def deploy_all(server: Platform, scratch: Path) -> None:
    for app in MEASURED:
        folder = app.write(scratch / "platform" / app.name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(folder, arcname=".")
        response = httpx.put(f"{server.url}/api/spaces/eras/{app.name}", content=buffer.getvalue(), timeout=60,
                             headers={"Content-Type": "application/gzip", **_auth(server)})
        response.raise_for_status()


def _auth(server: Platform) -> dict[str, str]:
    token_file = server.data_dir / "token"
    return {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else {}


def through_platform(server: Platform, app: EraApp, reference: dict[str, Any] | None,
                     python: Path | None) -> tuple[str, str]:
    try:
        server.wait_for(f"eras/{app.name}", timeout=1800)
    except AssertionError as exc:
        return "no", first_line(str(exc).split("\n")[0])
    if python is None:
        return "RUNNING", "(no direct env to call it with)"
    try:
        answer = probe(app, python, f"{server.url}/spaces/eras/{app.name}/")
    except RuntimeError as exc:
        return "no", f"call: {first_line(str(exc))}"
    same = answer == reference
    return ("yes" if same else "no"), ("" if same else f"answers differ: {answer} vs {reference}"[:110])


def build_cost(scratch: Path, cold: bool) -> list[str]:
    rows = ["| app | index lookup | era on | era off |", "|---|---|---|---|"]
    for app in MEASURED:
        started = time.monotonic()
        release_time(app.sdk, app.sdk_version)
        lookup = time.monotonic() - started
        cells = []
        for era in (True, False):
            root = scratch / f"cost-{app.name}-{'on' if era else 'off'}"
            settings = Settings(data_dir=root / "data", era_resolution=era,
                                uv_cache_dir=root / "uv-cache" if cold else None)
            plan = build_plan.make(build_spec.load(app.write(root / "app")), settings)
            started = time.monotonic()
            try:
                VenvBuilder(settings.envs_dir, settings).build(plan, lambda _: None)
                outcome = "built"
            except Exception as exc:  # a failed build is a result here, not an error of the bench
                outcome = f"failed: {str(exc)[:60]}"
            cells.append(f"{time.monotonic() - started:.1f} s ({outcome})")
        rows.append(f"| {app.name} | {lookup:.2f} s | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--direct", action="store_true")
    parser.add_argument("--platform", action="store_true")
    parser.add_argument("--platform-env", action="append", default=[])
    parser.add_argument("--build-cost", action="store_true")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-eras-"))
    if args.build_cost:
        table = "\n".join(build_cost(scratch, args.cold))
        print(table)
        if args.out:
            args.out.write_text(table + "\n")
        return 0
    rows: list[str] = ["| app | direct today | direct era | platform | why not |", "|---|---|---|---|---|"]
    results: dict[str, tuple[dict[str, Any] | None, str, float, dict[str, Any] | None, str, float]] = {}
    for app in MEASURED:
        today = direct(app, scratch, era=False) if args.direct else (None, "not run", 0.0)
        era = direct(app, scratch, era=True)
        results[app.name] = (*today, *era)
        print(app.name, "today:", today[1] or "ok", f"{today[2]:.0f}s", "era:", era[1] or "ok", f"{era[2]:.0f}s",
              flush=True)
    platform: dict[str, tuple[str, str]] = {}
    if args.platform:
        env = dict(item.split("=", 1) for item in args.platform_env)
        server = Platform(scratch / "data", env={"SPACES_RUNNER_ENABLED": "false", **env}).start(timeout=120)
        try:
            deploy_all(server, scratch)
            for app in MEASURED:
                reference = results[app.name][3]
                python = scratch / f"{app.name}-era" / "venv" / "bin" / "python"
                platform[app.name] = through_platform(server, app, reference, python if reference else None)
                print(app.name, "platform:", platform[app.name], flush=True)
        finally:
            server.stop()
    for app in MEASURED:
        t_answer, t_why, t_s, e_answer, e_why, e_s = results[app.name]
        p_ok, p_why = platform.get(app.name, ("not run", ""))
        today_cell = f"{'yes' if t_answer else 'no'} ({t_s:.0f} s)" if args.direct else "not run"
        why = "; ".join(w for w in (t_why and f"today {t_why}", e_why and f"era {e_why}", p_why) if w)
        rows.append(f"| {app.name} | {today_cell} | {'yes' if e_answer else 'no'} ({e_s:.0f} s) | {p_ok} | {why} |")
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
