"""What an app sees of the host, and the command line that makes it so (pure: no I/O, unit-tested).

The launch chain, all Debian tools, run by the platform as root:

``sh -c 'echo $$ > cgroup.procs ...; exec "$@"'`` joins the app's cgroups before anything of the app runs (no
race with a fork), then ``nsenter --net=/run/netns/NAME`` enters the app's own network namespace (prepared by
``network``), then ``bwrap`` builds a fresh mount, PID, IPC, UTS and cgroup namespace showing only what
:func:`plan_mounts` lists, and last ``setpriv`` drops to the space's own uid/gid with no groups, no capabilities
(bounding set too) and no-new-privileges before it execs the app. bwrap loads the seccomp filter (``seccomp``)
right before it execs setpriv, so the filter holds for setpriv and everything after it.

Why bwrap runs as root without a user namespace (not ``--unshare-all``): in a user namespace created by root, the
app's uid would map to root outside, and files it writes in /data would be root's; without one, the app's uid is
a real unprivileged host uid, which is what the kernel checks against the files of the host. bwrap keeps only
CAP_SETUID/SETGID/SETPCAP, and only for ``setpriv``, which gives them up for good before the app starts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

APP_DIR = "/home/user/app"  # where Hugging Face keeps a Space's code
DATA_DIR = "/data"
# read-only from the host; names that are symlinks there (merged /usr) become the same symlinks in the sandbox
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
KEPT_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")  # for setpriv only; it drops them
SECCOMP_FD = 9  # the launch chain's shell opens the filter's file here; bwrap reads it and closes it


@dataclass(frozen=True)
class Mount:
    source: str
    dest: str
    writable: bool = False


@dataclass(frozen=True)
class SandboxPlan:
    """One app's sandbox: what it sees, who it runs as, where it joins the network and cgroups."""

    mounts: tuple[Mount, ...]
    symlinks: tuple[tuple[str, str], ...]  # (target, link) as on the host: ("usr/lib", "/lib")
    masks: tuple[str, ...]  # paths covered by an empty tmpfs (the platform's own code inside /usr)
    uid: int
    gid: int
    cwd: str
    env: dict[str, str]
    argv: tuple[str, ...]
    netns: str | None = None  # /run/netns/NAME; None: the platform's own network namespace
    cgroup_procs: tuple[str, ...] = field(default_factory=tuple)
    seccomp: str | None = None  # a file holding the BPF program bwrap loads last, just before setpriv (``seccomp``)


def system_view(root_entries: dict[str, str | None]) -> tuple[list[Mount], list[tuple[str, str]]]:
    """The host's system folders as the sandbox shows them: ``root_entries`` maps a name in / to its symlink
    target (None for a real folder); names that are absent are left out."""
    mounts, links = [], []
    for name in SYSTEM_DIRS:
        if name not in root_entries:
            continue
        target = root_entries[name]
        if target is None:
            mounts.append(Mount(f"/{name}", f"/{name}"))
        else:
            links.append((target, f"/{name}"))
    return mounts, links


def platform_masks(platform_dirs: list[str], mounts: list[Mount]) -> list[str]:
    """The platform's own code folders that a read-only system mount would show (a platform installed into
    /usr/local); each is covered by an empty tmpfs."""
    masks = []
    for folder in platform_dirs:
        path = PurePosixPath(folder)
        if any(path == PurePosixPath(m.dest) or PurePosixPath(m.dest) in path.parents for m in mounts):
            masks.append(folder)
    return masks


def bwrap_args(plan: SandboxPlan) -> list[str]:
    """bwrap's options for ``plan``, in the order bwrap applies them: a private /tmp first (the data dir may lie
    under the host's /tmp), then each mount after the folders above it, each such folder made 0755 (bwrap makes
    them 0700 like their host originals, and the app's uid must pass through them)."""
    args = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for cap in KEPT_CAPS:
        args += ["--cap-add", cap]
    args += ["--hostname", "app", "--tmpfs", "/tmp", "--chmod", "1777", "/tmp",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--chmod", "1777", "/dev/shm"]
    for target, link in plan.symlinks:
        args += ["--symlink", target, link]
    made: set[str] = {"/", "/tmp", "/proc", "/dev"}
    for mount in sorted(plan.mounts, key=lambda m: len(PurePosixPath(m.dest).parts)):
        for parent in _parents(mount.dest):
            if parent not in made and not _under_mount(parent, plan.mounts):
                args += ["--perms", "0755", "--dir", parent]
            made.add(parent)
        args += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.dest]
        made.add(mount.dest)
    for mask in plan.masks:
        args += ["--tmpfs", mask]
    # the environment is handed to the launch chain as its environment (``plan.env``), never as --setenv
    # arguments: every host user reads /proc/PID/cmdline, and the app's environment holds its secrets
    args += ["--chdir", plan.cwd]
    if plan.seccomp is not None:
        args += ["--seccomp", str(SECCOMP_FD)]
    return args


def drop_privileges(setpriv: str, uid: int, gid: int) -> list[str]:
    """setpriv's argv prefix: the space's uid/gid, no supplementary groups, no capabilities, no new privileges."""
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def command(plan: SandboxPlan, tools: dict[str, str]) -> list[str]:
    """The whole launch chain for ``plan``; ``tools``: where sh, nsenter, bwrap and setpriv are on this host."""
    drop = drop_privileges(tools["setpriv"], plan.uid, plan.gid)
    chain = [tools["bwrap"], *bwrap_args(plan), "--", *drop, *plan.argv]
    if plan.netns is not None:
        chain = [tools["nsenter"], f"--net={plan.netns}", "--", *chain]
    steps = [f"echo $$ > {shlex.quote(procs)}" for procs in plan.cgroup_procs]
    if plan.seccomp is not None:  # bwrap takes the filter as an open fd, not a path
        steps.append(f"exec {SECCOMP_FD}< {shlex.quote(plan.seccomp)}")
    if steps:
        chain = [tools["sh"], "-c", " && ".join([*steps, 'exec "$@"']), "sandbox", *chain]
    return chain


def _parents(dest: str) -> list[str]:
    path = PurePosixPath(dest)
    return [str(p) for p in reversed(path.parents) if str(p) != "/"]


def _under_mount(folder: str, mounts: tuple[Mount, ...]) -> bool:
    """Whether ``folder`` lies inside a mounted host folder (bwrap must not chmod the host's own)."""
    path = PurePosixPath(folder)
    return any(PurePosixPath(m.dest) in path.parents or PurePosixPath(m.dest) == path for m in mounts)
