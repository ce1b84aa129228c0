"""What a fork of a zygote (``spaces_runtime.zygote``) is given to build an instance's sandbox itself, and what
the platform does for it from outside, as root (the zygote and its forks have no privilege on the host).

The request splits the plan's mounts in two. What every app of the environment sees read-only (the system
folders, the environment, its interpreter, the appkit) is the zygote's own view too (handed to the zygote as
detached trees when it starts: its uid could not open them), so the fork binds it from there. What belongs to
one space (its app folder, its /data) and the runner's socket folder, the zygote never sees: the platform hands
the fork each as a detached mount tree (``detached``), which only that fork mounts.
"""

from __future__ import annotations

import base64
from pathlib import Path

from spaces_runtime.sandbox import layout

ZYGOTE_IDENTITY = "(zygotes)"  # the identities record of the zygotes' own uid: never a space id (no slash)
FD_SOURCE = "fd:"  # spaces_runtime.zygote.enter.FD_SOURCE: the mount's source is the fork's detached tree N


def runner_folder(env: dict[str, str]) -> str | None:
    url = env.get("SPACES_RUNNER_URL", "")
    return str(Path(url[len("unix://"):]).parent) if url.startswith("unix://") else None


def own_mounts(plan: layout.SandboxPlan) -> list[layout.Mount]:
    """The mounts only this instance may see (pure): the writable ones and the runner's socket folder."""
    runner = runner_folder(plan.env)
    return [m for m in plan.mounts if m.writable or m.source == runner]


def request(plan: layout.SandboxPlan, zygote_uid: int, uid_base: int, uid_count: int,
            seccomp: bytes | None = None, zygote_cgroup: tuple[str, ...] = ()) -> dict[str, object]:
    """The zygote's request for ``plan`` (pure, JSON): ``argv``/``env``/``cwd``/``sandbox`` go to the fork;
    ``zygote`` (the zygote's view, ids and cgroup.procs files) and ``detached`` (the host folders, in the order
    the fork's ``fd:N`` sources name them) are the platform's side."""
    own = own_mounts(plan)
    # a shared mount is bound from where the zygote's view shows it (its dest there)
    mounts = [[f"{FD_SOURCE}{own.index(m)}" if m in own else m.dest, m.dest, m.writable] for m in plan.mounts]
    view = {"mounts": [[m.source, m.dest, False] for m in plan.mounts if m not in own],
            "symlinks": [list(link) for link in plan.symlinks], "masks": list(plan.masks)}
    box = {"mounts": mounts, "symlinks": view["symlinks"], "masks": view["masks"], "uid": plan.uid,
           "gid": plan.gid, "cwd": plan.cwd, "hostname": "app",
           "seccomp": base64.b64encode(seccomp).decode() if seccomp else None}  # the filter bwrap would load
    env = {**plan.env, "PWD": plan.cwd}  # bwrap's --chdir sets it
    return {"argv": list(plan.argv), "env": env, "cwd": plan.cwd, "sandbox": box,
            "zygote": {"view": view, "uid": zygote_uid, "uids": [uid_base, uid_count],
                       "cgroup_procs": list(zygote_cgroup)},
            "detached": [m.source for m in own]}


def join_cgroups(procs: tuple[str, ...], pid: int) -> None:
    """Process ``pid`` (and all it will start) counted in the instance's cgroups: root writes any pid there."""
    for path in procs:
        Path(path).write_text(str(pid))
