"""How a forked app enters the same sandbox bwrap builds for an exec'd one (stdlib only: runs in the zygote's
children, inside the app's virtualenv interpreter), and how the zygote itself is boxed before it imports anything.

bwrap creates its namespaces when it is exec'd, so a fork of the zygote cannot join it afterwards. Each fork
instead makes the sandbox itself, in the order the exec chain of ``sandbox.layout`` does it, with the same
syscalls bwrap and setpriv make. It runs inside the zygote's user namespace (``own_user_namespace``), where it is
root over the namespaces it creates and nothing else; what needs the host's root the platform does from outside:

1. ``wait_for_platform`` (the host-side process, like bwrap's outer one): unshares a network namespace and waits
   while the platform moves it into the instance's cgroups (so everything after is counted) and plumbs the
   instance's veth into that namespace; then it unshares mount, PID, IPC, UTS and cgroup namespaces and forks;
2. ``init`` (pid 1 of the new PID namespace, like bwrap's init): builds the mount view of ``SandboxPlan`` on a
   fresh tmpfs (the system folders, environment and interpreter read-only from the zygote's own view; the app's
   folder, /data and the runner's socket folder grafted from the detached trees the platform passed, which the
   zygote's view never shows; a private /tmp, /proc, a minimal /dev, the platform's own code masked), pivots
   into it, sets the host name, forks the app and reaps orphans; it exits with the app's code, 128 + N for death
   by signal N, as bwrap does;
3. the app (pid 2): a new session, no supplementary groups, the capability bounding set emptied, the space's own
   uid/gid (mapped one to one: the same uid on the host), which clears the permitted and effective sets, the
   inheritable and ambient sets cleared, no-new-privileges, parent-death signal, its working directory: what
   ``setpriv`` does before exec.

Each process gets SIGKILL when its parent dies (bwrap's ``--die-with-parent``), so a zygote killed at any point
leaves no app behind.
"""

from __future__ import annotations

import base64
import ctypes
import os
import signal
import socket
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MNT_DETACH = 2
# what a bind remount must keep: in a user namespace the kernel refuses to change a flag it locked
_KEPT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME
_ST_RELATIME = 4096  # statvfs's flag for relatime (the mount flag is MS_RELATIME)
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH = 1, os.O_CLOEXEC, 4
FORK_NS = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
# where a fork builds its root, in the zygote's view: not /tmp, where the view may show the environment
FORK_ROOT = "/.fork-root"
FD_SOURCE = "fd:"  # a mount whose source is a detached tree the platform passed (``detach``), by its index
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
_SYSCALLS = {"x86_64": {"pivot_root": 155, "capset": 126, "open_tree": 428, "move_mount": 429},
             "aarch64": {"pivot_root": 41, "capset": 91, "open_tree": 428, "move_mount": 429}}
_PROC_COVERED = ("sys", "sysrq-trigger", "irq", "bus")
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")  # what bwrap's --dev binds from the host
_DEV_LINKS = (
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("/proc/kcore", "core"),
    ("pts/ptmx", "ptmx"),
)
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class Box:
    """The ``SandboxPlan`` as the zygote's request carries it (JSON), or the zygote's own view (``--view``)."""

    mounts: list[tuple[str, str, bool]]  # (source, dest, writable); a source FD_SOURCE + i: ``trees[i]``
    symlinks: list[tuple[str, str]]
    masks: list[str]
    uid: int = 0
    gid: int = 0
    cwd: str = "/"
    # the folder the new root's tmpfs is mounted on, in the private mount namespace only: for the zygote /tmp,
    # which its tmpfs covers (nothing of the host's /tmp, where a data dir may lie, stays visible); FORK_ROOT
    # for a fork
    root: str = "/tmp"
    hostname: str = "app"
    trees: tuple[int, ...] = ()  # detached mount trees the platform passed (the app's folder, /data...)
    seccomp: bytes | None = None  # the BPF program (``sandbox.seccomp``) bwrap would load for an exec'd app

    @classmethod
    def of(cls, data: dict[str, object], trees: tuple[int, ...] = ()) -> Box:
        mounts = [(str(m[0]), str(m[1]), bool(m[2])) for m in _items(data["mounts"])]
        links = [(str(t[0]), str(t[1])) for t in _items(data["symlinks"])]
        return cls(
            mounts=mounts,
            symlinks=links,
            masks=[str(m) for m in _items(data["masks"])],
            uid=_int(data.get("uid", 0)),
            gid=_int(data.get("gid", 0)),
            cwd=str(data.get("cwd", "/")),
            hostname=str(data.get("hostname", "app")),
            trees=trees,
            seccomp=base64.b64decode(str(data["seccomp"])) if data.get("seccomp") else None,
        )


def _items(value: object) -> list[list[object]]:
    if not isinstance(value, list):
        raise ValueError(f"a list was expected in the request, not {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise ValueError(f"a number was expected in the request, not {value!r}")
    return value


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _syscall(name: str, *args: object) -> int:
    number = _SYSCALLS[os.uname().machine][name]
    return int(_libc.syscall(ctypes.c_long(number), *args))


def die_with_parent(parent: int | None) -> None:
    """SIGKILL when the parent goes; if it went before this was set, go now (the race prctl leaves open).
    ``parent`` None: pid 1 of a new PID namespace, whose parent outside it reads as 0 either way."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(_libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3]), f"mount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def detach(path: str) -> int:
    """A detached copy of the mount tree at ``path`` (open_tree), as a descriptor: the platform's way to hand a
    fork its app folder and /data, which the zygote's own view never shows (run by the platform, as root)."""
    fd = _syscall("open_tree", ctypes.c_int(AT_FDCWD), path.encode(),
                  ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE))
    if fd < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"open_tree {path}: {os.strerror(errno)}")
    return fd


def _attach_tree(fd: int, dest: str) -> None:
    _check(_syscall("move_mount", ctypes.c_int(fd), b"", ctypes.c_int(AT_FDCWD), dest.encode(),
                    ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount {dest}")


def own_user_namespace(control: socket.socket, platform: int) -> None:
    """The zygote's first step, still the platform's root: a user namespace of its own, whose uid/gid maps the
    platform writes from outside (0 inside: an unprivileged host uid of the zygote's own; the apps' uids one to
    one), then uid 0 in it. From here on the zygote's file access on the host is that unprivileged uid's, and its
    capabilities reach only the namespaces it owns."""
    unshare(CLONE_NEWUSER)
    control.sendall(b"userns\n")
    if _read_line(control) != b"mapped":
        os._exit(1)
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)
    die_with_parent(platform)  # a credential change cleared it


def _read_line(channel: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = channel.recv(1)
        if not chunk:
            break
        data += chunk
    return data.strip()


def wait_for_platform(channel: socket.socket) -> None:
    """A fork's step 1: a network namespace of its own (owned by the zygote's user namespace), then the platform
    moves this process into the instance's cgroups and plumbs the veth into that namespace from outside (host
    root: what the zygote cannot do) and says ``go``; EOF instead (the platform gave up): the fork ends."""
    unshare(CLONE_NEWNET)
    channel.sendall(b"ready 0\n")
    if _read_line(channel) != b"go":
        os._exit(1)


def build_root(box: Box) -> None:
    """Step 2, in pid 1 of the new PID namespace (so /proc is this namespace's): the mount view, then pivot.
    Also the zygote's own view (system folders, the environment, /tmp, /proc, /dev: nothing of the data dir)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the host's mounts
    root = box.root
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for target, link in box.symlinks:
        os.symlink(target, root + link)
    _special(root)
    for source, dest, writable in sorted(box.mounts, key=lambda m: len(m[1].strip("/").split("/"))):
        if source.startswith(FD_SOURCE):
            _graft(box.trees[int(source[len(FD_SOURCE):])], root + dest, writable)
        else:
            _bind(source, root + dest, writable)
    for mask in box.masks:
        mount("tmpfs", root + mask, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    os.chdir(root)
    _check(_syscall("pivot_root", b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the host's root")
    os.chdir("/")
    socket.sethostname(box.hostname)


def _special(root: str) -> None:
    """/tmp, /proc, /dev and /dev/shm as bwrap's --tmpfs /tmp --proc /proc --dev /dev --tmpfs /dev/shm make them."""
    for name in ("tmp", "proc", "dev"):
        os.mkdir(f"{root}/{name}", 0o755)
    mount("tmpfs", f"{root}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in _PROC_COVERED:  # bwrap's --proc: these stay read-only; one the host refuses is skipped, as there
        try:
            _bind(f"{root}/proc/{name}", f"{root}/proc/{name}", writable=False)
        except OSError:
            continue
    dev = f"{root}/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755")
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{dev}/{name}", "w").close()
            mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND | MS_NOSUID)
    os.mkdir(f"{dev}/pts", 0o755)
    mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    for target, link in _DEV_LINKS:
        os.symlink(target, f"{dev}/{link}")
    os.mkdir(f"{dev}/shm", 0o755)
    mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")


def _bind(source: str, dest: str, writable: bool) -> None:
    """A bind mount with its parents made 0755 (the app's uid must pass through them); read-only ones are made
    so together with every mount beneath them, as bwrap's --ro-bind does."""
    if os.path.isdir(source):
        os.makedirs(dest, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
        if not os.path.exists(dest):
            open(dest, "w").close()
    mount(source, dest, None, MS_BIND | MS_REC)
    if not writable:
        _read_only(dest)


def _graft(tree: int, dest: str, writable: bool) -> None:
    """A detached tree the platform passed, mounted at ``dest`` (a folder)."""
    os.makedirs(dest, 0o755, exist_ok=True)
    _attach_tree(tree, dest)
    if not writable:
        _read_only(dest)


def _read_only(dest: str) -> None:
    for point in [dest, *_submounts(dest)]:
        flags = os.statvfs(point).f_flag
        atime = MS_RELATIME if flags & _ST_RELATIME else 0 if flags & MS_NOATIME else MS_STRICTATIME
        kept = flags & _KEPT_FLAGS | atime
        mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _submounts(top: str) -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(top.rstrip("/") + "/"):
                found.append(point)
    return found


def drop_to(box: Box) -> None:
    """Step 3, in the app's own process: what bwrap's --new-session and setpriv's options do, in their order."""
    os.setsid()
    os.setgroups([])
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        last = int(handle.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"prctl(PR_CAPBSET_DROP, {cap})")
    os.setresgid(box.gid, box.gid, box.gid)
    os.setresuid(box.uid, box.uid, box.uid)  # the permitted and effective sets go with uid 0
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable of two 32-bit words: all empty
    _check(_syscall("capset", header, data), "capset")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT)")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    die_with_parent(1)  # after the uid change: a credential change clears the parent-death signal
    os.chdir(box.cwd)
    if box.seccomp is not None:
        load_filter(box.seccomp)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def load_filter(program: bytes) -> None:
    """The seccomp filter an exec'd app gets from bwrap (a raw struct sock_filter[], 8 bytes an instruction),
    loaded last, after the sandbox's own unshare and mount calls, which it refuses."""
    if not program or len(program) % 8:
        raise ValueError(f"a seccomp program of {len(program)} bytes is not whole BPF instructions")
    fprog = _SockFprog(len(program) // 8, program)
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "prctl(PR_SET_SECCOMP)")


def exit_code(status: int) -> int:
    """A wait status as bwrap reports the app's end: its code, or 128 + N for death by signal N (pure)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def reap_until(child: int) -> int:
    """pid 1's duty: reap every orphan, and return ``child``'s exit code when it ends."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid == child:
            return exit_code(status)
