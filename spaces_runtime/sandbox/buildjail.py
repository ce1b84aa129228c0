"""Builds in a sandbox of their own: uv, and every setup.py or build backend it runs, as an unprivileged build
identity that sees the host's system folders read-only, the interpreter, uv itself, uv's build cache and the new
environment, and no other file of the host (not the store, not other environments, not the platform's code).

A package's setup.py is arbitrary code, run at build time; without this it ran as the platform's user (root
here). bwrap, setpriv and the seccomp filter come from the app sandbox (``layout``), with three differences: the
host's network (the package index is reached through whatever proxy the host uses), no cgroup, and the identity is
one uid for all builds, not one per space. What a build could still do: write into the shared uv cache (which
later builds read: uv's cache is shared by design, as on any CI runner) and reach the host's network. The finished
environment is handed back to root before any app uses it, so no build and no app can change it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from spaces_runtime.config import Settings
from spaces_runtime.sandbox import layout
from spaces_runtime.sandbox.launcher import PLATFORM_DIRS, chown_tree, root_entries, seccomp_program


class BuildJail:
    def __init__(self, settings: Settings, tools: dict[str, str], uv: str) -> None:
        self.tools = tools
        self.uv = str(Path(uv).resolve())
        self.uid = settings.sandbox_uid_base - 1  # below every app's uid, above every host user's
        self.cache_dir = build_cache_dir(settings, self.uid)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if self.cache_dir.stat().st_uid != self.uid:  # made by root, or by an older platform: once
            chown_tree(self.cache_dir, self.uid, self.uid)
        self.python_downloads = settings.python_downloads
        self.seccomp = seccomp_program(settings)

    def enter(self, scratch: Path) -> None:
        """The build identity owns the new environment's folder while it is built."""
        os.chown(scratch, self.uid, self.uid)

    def seal(self, env_dir: Path) -> None:
        """The finished environment becomes root's: read-only to every build and every app from now on."""
        chown_tree(env_dir, 0, 0)

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """uv's environment inside: its cache, a private home and temp."""
        return {**env, "UV_CACHE_DIR": str(self.cache_dir), "HOME": "/tmp", "TMPDIR": "/tmp",
                "XDG_CACHE_HOME": "/tmp/.cache"}

    def wrap(self, argv: list[str], scratch: Path, readable: Sequence[Path]) -> list[str]:
        """``argv`` run as the build identity, seeing only what a build needs."""
        system, links = layout.system_view(root_entries())
        mounts = [*system, layout.Mount(self.uv, self.uv), layout.Mount(str(self.cache_dir), str(self.cache_dir),
                                                                        writable=True),
                  layout.Mount(str(scratch), str(scratch), writable=True)]
        for path in readable:
            if path.exists() and not _covered(path, mounts):
                mounts.append(layout.Mount(str(path), str(path), writable=self.python_downloads and path.is_dir()))
        plan = layout.SandboxPlan(mounts=tuple(mounts), symlinks=tuple(links),
                                  masks=tuple(layout.platform_masks(list(PLATFORM_DIRS), system)),
                                  uid=self.uid, gid=self.uid, cwd="/tmp", env={}, argv=tuple(argv),
                                  seccomp=str(self.seccomp))
        return layout.command(plan, self.tools)


def build_cache_dir(settings: Settings, build_uid: int) -> Path:
    """SPACES_UV_CACHE_DIR, else one build cache for every platform of this host that builds as ``build_uid`` (a
    data dir's own would make every new platform download every package again). The uid is in the name because
    the cache belongs to the build identity: two platforms with different SPACES_SANDBOX_UID_BASE on one host
    sharing one folder took it from each other, and the other's builds failed (uv: Permission denied)."""
    if settings.uv_cache_dir is not None:
        return Path(settings.uv_cache_dir)
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "spaces-runtime" / f"uv-builds-{build_uid}"


def _covered(path: Path, mounts: list[layout.Mount]) -> bool:
    return any(path == Path(m.dest) or Path(m.dest) in path.parents for m in mounts)
