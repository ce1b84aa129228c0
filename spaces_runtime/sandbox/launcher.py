"""Prepares one app instance's sandbox on this host (I/O around the pure ``layout``): its identity, folders,
cgroup and network namespace, and the command line that starts it inside them."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from spaces_runtime.config import PACKAGE_DIR, Settings
from spaces_runtime.errors import BackendError
from spaces_runtime.sandbox import cgroups, forking, layout, seccomp
from spaces_runtime.sandbox.disks import Disks
from spaces_runtime.sandbox.identity import HostRegistry, Identities
from spaces_runtime.sandbox.network import Lease, Network
from spaces_runtime.supervisor.backend import LaunchSpec
from spaces_runtime.supervisor.labels import platform_id
from spaces_runtime.supervisor.launch import process_command
from spaces_runtime.supervisor.tiers import TIERS, Limits, limits_for, under_ceilings

# the platform's own code: masked if a system folder the sandbox shows holds it (an install into /usr/local)
PLATFORM_DIRS = (str(PACKAGE_DIR), str(PACKAGE_DIR.parent / "builder"))


@dataclass
class Prepared:
    argv: list[str]
    env: dict[str, str]  # the app's whole environment: the launch chain's own, passed down to the app
    upstream: str
    uid: int
    cgroup: cgroups.Cgroup
    lease: Lease | None
    limits: Limits
    plan: layout.SandboxPlan  # what ``argv`` builds, for a fork of a zygote to build itself (spaces_runtime.zygote)
    data: Path | None = None  # the space's /data on the host, on its own disk while this instance runs (disks)


def host_limits(settings: Settings, hardware: str) -> Limits:
    """The hardware tier scaled to this host (as the docker backend does), under the operator's ceilings."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return under_ceilings(limits_for(hardware, TIERS, os.cpu_count() or 1, memory, 0), settings)


def slug(space_id: str) -> str:
    return re.sub(r"[^a-z0-9_.-]", "-", space_id.replace("/", "--").lower())


def interpreter_home(env_dir: Path) -> Path | None:
    """The base interpreter's prefix a virtualenv runs on (pyvenv.cfg ``home`` is its bin/)."""
    with contextlib.suppress(OSError):
        for line in (env_dir / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return Path(value.strip()).resolve().parent
    return None


def root_entries() -> dict[str, str | None]:
    return {p.name: (os.readlink(p) if p.is_symlink() else None) for p in Path("/").iterdir()}


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """The app's own folder becomes its uid's (as on Hugging Face, apps write .gradio/ and caches there);
    symlinks are changed themselves, never what they point at."""
    for root, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.lchown(os.path.join(root, name), uid, gid)
    os.lchown(top, uid, gid)


def readable(folder: Path) -> None:
    """A finished environment stays root's and read-only to apps (mounted so, too), but apps must enter it: it
    was built in a private (0700) scratch folder."""
    mode = folder.stat().st_mode & 0o777
    if mode & 0o055 != 0o055:
        os.chmod(folder, mode | 0o755)


class Sandbox:
    def __init__(self, settings: Settings, tools: dict[str, str]) -> None:
        self.settings = settings
        self.tools = tools
        registry = HostRegistry(settings.sandbox_uid_registry, settings.sandbox_uid_base, settings.sandbox_uid_count)
        self.identities = Identities(settings.db_path, registry, settings.data_dir)
        allowed = tuple(c.strip() for c in settings.sandbox_private_outbound.split(",") if c.strip())
        self.network = Network(settings.sandbox_bridge, settings.sandbox_subnet, allowed)
        self.prefix = f"sbx{platform_id(settings.data_dir)[:8]}"
        self.disks = disks_of(settings)
        self._zygotes_group: cgroups.Cgroup | None = None  # the zygotes' own cgroup, made on first use
        self.seccomp = seccomp_program(settings)

    @staticmethod
    def data_dir_of(settings: Settings, space_id: str) -> Path:
        """The space's persistent /data: kept across redeploys and restarts, removed on delete."""
        return settings.data_dir / "sandbox" / "data" / slug(space_id)

    def data_dir(self, space_id: str) -> Path:
        return self.data_dir_of(self.settings, space_id)

    def prepare(self, spec: LaunchSpec, python: Path, plumb: bool = True) -> Prepared:
        """``plumb`` False: the network namespace is a placeholder, for a fork of a zygote (``attach_fork``; an
        exec after all calls ``plumb``)."""
        assert spec.env_dir is not None
        uid = self.identities.uid_for(spec.space_id)
        data = self.data_dir(spec.space_id)
        data.mkdir(parents=True, exist_ok=True)
        self.disks.attach(data)  # before the chown: a fresh disk's root is root's
        try:
            if data.stat().st_uid != uid:  # a fresh disk (root's), or the space's uid changed (``identity``)
                chown_tree(data, uid, uid)
            os.chmod(data, 0o700)
            chown_tree(spec.app_dir, uid, uid)
            readable(spec.env_dir)
            limits = host_limits(self.settings, spec.hardware)
            name = f"{self.prefix}-{slug(spec.space_id)[:40]}-{secrets.token_hex(3)}"
            group = cgroups.Cgroup.create(name, cgroups.CgroupLimits(limits.memory_bytes, limits.nano_cpus / 1e9,
                                                                      limits.pids))
        except BaseException:
            self.disks.detach(data)
            raise
        try:
            lease = self.network.claim(self.prefix, plumb=plumb)
        except BaseException:
            group.remove()
            self.disks.detach(data)
            raise
        inside = replace(spec, app_dir=Path(layout.APP_DIR))
        argv, env = process_command(inside, spec.app_port, python, inherited=dict(os.environ), host="0.0.0.0")
        env.update({"HOME": layout.APP_DIR, "TMPDIR": "/tmp", "HF_HOME": "/data/.huggingface"})
        plan = layout.SandboxPlan(
            mounts=tuple(self._mounts(spec, data)), symlinks=tuple(self._system()[1]),
            masks=tuple(layout.platform_masks(list(PLATFORM_DIRS), self._system()[0])), uid=uid, gid=uid,
            cwd=layout.APP_DIR, env=env, argv=tuple(argv), netns=lease.path,
            cgroup_procs=tuple(str(p) for p in group.plan.procs), seccomp=str(self.seccomp))
        return Prepared(argv=layout.command(plan, self.tools), env=env, upstream=f"http://{lease.address}:{spec.app_port}",
                        uid=uid, cgroup=group, lease=lease, limits=limits, plan=plan, data=data)

    def fork_request(self, prepared: Prepared) -> dict[str, object]:
        """What a fork of a zygote needs to build ``prepared``'s sandbox itself (``sandbox.forking``)."""
        own = self.identities.uid_for(forking.ZYGOTE_IDENTITY)  # a uid of the zygotes' own, never an app's
        program = Path(prepared.plan.seccomp).read_bytes() if prepared.plan.seccomp else None
        if self._zygotes_group is None:  # what an SDK's import does in a zygote counts against limits too
            limits = host_limits(self.settings, "cpu-basic")
            self._zygotes_group = cgroups.Cgroup.create(f"{self.prefix}-zygotes", cgroups.CgroupLimits(
                limits.memory_bytes, limits.nano_cpus / 1e9, limits.pids))
        return forking.request(prepared.plan, own, self.settings.sandbox_uid_base, self.settings.sandbox_uid_count,
                               program, tuple(str(p) for p in self._zygotes_group.plan.procs))

    def attach_fork(self, prepared: Prepared, pid: int) -> None:
        """The fork ``pid`` joins the instance's cgroups, and its own network namespace becomes the instance's."""
        assert prepared.lease is not None
        forking.join_cgroups(prepared.plan.cgroup_procs, pid)
        self.network.attach(prepared.lease, pid)

    def plumb(self, prepared: Prepared) -> None:
        """The network of an instance prepared for a fork that is exec'd after all."""
        assert prepared.lease is not None
        self.network.plumb(prepared.lease)

    def _system(self) -> tuple[list[layout.Mount], list[tuple[str, str]]]:
        return layout.system_view(root_entries())

    def _mounts(self, spec: LaunchSpec, data: Path) -> list[layout.Mount]:
        assert spec.env_dir is not None
        mounts = [*self._system()[0],
                  layout.Mount(str(spec.app_dir), layout.APP_DIR, writable=True),
                  layout.Mount(str(data), layout.DATA_DIR, writable=True),
                  layout.Mount(str(spec.env_dir), str(spec.env_dir))]  # read-only: no .pth into a shared env
        home = interpreter_home(spec.env_dir)
        if home is not None and not any(home == Path(m.dest) or Path(m.dest) in home.parents for m in mounts):
            mounts.append(layout.Mount(str(home), str(home)))
        for entry in spec.env.get("PYTHONPATH", "").split(":"):  # the appkit
            if entry and Path(entry).is_dir():
                mounts.append(layout.Mount(entry, entry))
        url = spec.env.get("SPACES_RUNNER_URL", "")
        if url.startswith("unix://"):  # the socket's own folder holds nothing else
            folder = str(Path(url[len("unix://"):]).parent)
            if Path(folder).is_dir():
                mounts.append(layout.Mount(folder, folder))
        return mounts

    def release(self, prepared: Prepared) -> None:
        prepared.cgroup.remove()
        if prepared.lease is not None:
            self.network.release(prepared.lease)
        if prepared.data is not None:
            self.disks.detach(prepared.data)

    def clean_leftovers(self) -> None:
        """What a previous run of this platform left (killed with -9): its cgroups' processes, then the
        cgroups and network namespaces themselves."""
        for folder in cgroups.leftovers(f"{self.prefix}-"):
            with contextlib.suppress(OSError, ValueError):
                for pid in (int(p) for p in (folder / "cgroup.procs").read_text().split()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
        for folder in cgroups.leftovers(f"{self.prefix}-"):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.network.release_leftovers(self.prefix)
        self.disks.unmount_leftovers(self.settings.data_dir / "sandbox" / "data")

    def close(self) -> None:
        self.identities.close()


def seccomp_program(settings: Settings) -> Path:
    """The seccomp filter every app and build runs under, compiled for this host's kernel ABI into the data dir
    (again at each start: the platform's rules may have changed since)."""
    return seccomp.write_program(settings.data_dir / "run" / "seccomp.bpf")


def disks_of(settings: Settings) -> Disks:
    """The spaces' /data disks (SPACES_SANDBOX_DATA_QUOTA_MB each; 0: none, /data is a folder of the host's)."""
    return Disks(settings.data_dir / "sandbox" / "disks", settings.sandbox_data_quota_mb)


def unavailable(missing: list[str]) -> BackendError:
    return BackendError("the app sandbox is unavailable on this host (missing: " + "; ".join(missing) + ")",
                        hint="`spaces doctor` shows what the host has; SPACES_ALLOW_UNSANDBOXED=1 runs apps "
                             "WITHOUT isolation, as the platform's own user")
