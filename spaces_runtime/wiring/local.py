"""`spaces run DIR`: one app, locally, exactly as the platform builds and starts it — in the foreground."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from builder import plan as build_plan
from builder import spec as build_spec
from builder.venv import VenvBuilder, python_in
from spaces_runtime.config import Settings
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.launch import process_command


def run_local(folder: Path, port: int, settings: Settings) -> int:
    spec = build_spec.load(folder)
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if spec.sdk == "static":
        print(f"serving {folder} at http://127.0.0.1:{port}/", file=sys.stderr)
        os.execv(sys.executable, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                  "--directory", str(folder)])
    plan = build_plan.make(spec, settings)
    env_dir = VenvBuilder(settings.envs_dir, settings).build(plan, lambda line: print(line, file=sys.stderr))
    name = folder.resolve().name.lower()
    launch = LaunchSpec(space_id=f"local/{name}", sdk=spec.sdk, app_dir=folder.resolve(), app_file=spec.app_file,
                        base_path="", env={"SPACE_ID": f"local/{name}", "SPACE_TITLE": spec.title},
                        env_dir=env_dir, sdk_version=spec.sdk_version)
    argv, env = process_command(launch, port, python_in(env_dir), dict(os.environ))
    print(f"starting {spec.title} at http://127.0.0.1:{port}/", file=sys.stderr)
    os.chdir(folder)
    os.execve(argv[0], argv, env)
    return 0  # not reached: exec replaced this process
