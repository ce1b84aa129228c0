"""The system calls an app (and a build) may not make, as a seccomp filter: a deny-list in the spirit of Docker's
default profile, compiled by libseccomp (through ``pyseccomp``, ctypes over libseccomp.so.2).

Why a filter on top of the sandbox: the app already runs as an unprivileged uid with no capabilities, so most of
these calls fail anyway; but an unprivileged process may still create a user namespace, become root *inside* it and
reach kernel code (mount, netfilter, keyrings...) that only root could reach before, and several calls (bpf,
perf_event_open, userfaultfd, io_uring, keyctl) are large kernel attack surfaces an app never needs. The filter
cuts them off whatever the capabilities are, as a container engine does.

What is denied and why (everything else is allowed):

- namespaces: ``unshare`` and ``clone`` with any namespace flag, ``setns``: no user namespace, so no root-inside;
  ``clone3`` answers ENOSYS (its flags sit in a struct seccomp cannot read), so glibc falls back to ``clone``.
- mounts: ``mount``, ``umount2``, ``pivot_root``, ``chroot`` and the new mount API (``open_tree``, ``move_mount``,
  ``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``, ``mount_setattr``): the app's view of files is the sandbox's.
- kernel keyrings: ``keyctl``, ``add_key``, ``request_key`` (not namespaced: a neighbour's keys).
- kernel programs and tracing: ``bpf``, ``perf_event_open``, ``lookup_dcookie``.
- the kernel itself: ``kexec_load``, ``kexec_file_load``, ``init_module``, ``finit_module``, ``delete_module``,
  ``reboot``, ``swapon``, ``swapoff``, ``acct``, ``quotactl``, ``quotactl_fd``, ``nfsservctl``, ``syslog``,
  ``uselib``, ``_sysctl``, ``ustat``, ``sysfs``, ``iopl``, ``ioperm``, ``open_by_handle_at`` (the "shocker"
  container escape), the clocks (``settimeofday``, ``clock_settime``, ``clock_adjtime``, ``adjtimex``).
- ``userfaultfd`` (stalls the kernel at will: the usual helper of kernel exploits) and ``io_uring_setup``,
  ``io_uring_enter``, ``io_uring_register`` (the largest source of kernel privilege escalations of recent years;
  Docker blocks it too; libuv and others fall back to plain syscalls when it is refused).
- ``personality`` with a flag past PER_LINUX32|UNAME26 (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO...),
  except the query 0xffffffff: close to Docker, which allows only 0, 8, 0x20000, 0x20008 and the query.
- ``ioctl(TIOCSTI)`` and ``ioctl(TIOCLINUX)``: typing into a terminal the app shares with someone else.

Allowed on purpose: ``ptrace`` and ``process_vm_readv``/``writev`` (py-spy, gdb): an app sees only its own
processes (its own PID namespace), all of its own uid; since Linux 4.8 a tracer cannot use ptrace to step around
this filter (seccomp checks a syscall again after the tracer changed it), which is why Docker allows it there too.

Denied calls answer EPERM (ENOSYS for clone3), never kill: a program that probes for a feature sees it refused and
goes on. Only the host's native ABI is allowed; a syscall of another ABI (i386 ``int 0x80``, x32) kills the
process, so the filter cannot be stepped around by entering the kernel through a second table.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from spaces_runtime.errors import BackendError

if TYPE_CHECKING:  # imported when used: a host without libseccomp.so.2 must still import this module
    from pyseccomp import SyscallFilter

CLONE_NEWTIME = 0x00000080  # unshare only: in clone's flags these bits are the exit signal
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACES = (CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
                    CLONE_NEWNET)
TIOCSTI, TIOCLINUX = 0x5412, 0x541C

DENIED = (
    "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
    "lookup_dcookie", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "nfsservctl", "syslog", "uselib", "_sysctl", "ustat",
    "sysfs", "iopl", "ioperm", "open_by_handle_at", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
)


@dataclass(frozen=True)
class Condition:
    """One argument test of a rule (libseccomp's scmp_arg_cmp): ``arg`` compared with ``op`` to ``a`` (and ``b``:
    for MASKED_EQ, ``a`` is the mask and ``b`` the value)."""

    arg: int
    op: str  # the name of a pyseccomp comparison: "MASKED_EQ", "EQ"
    a: int
    b: int = 0


@dataclass(frozen=True)
class Rule:
    syscall: str
    errno: int
    conditions: tuple[Condition, ...] = ()  # all must hold; no condition: every call


def personality_rules() -> list[Rule]:
    """personality(x) refused unless x <= 0x3ffff (the exec domains, PER_LINUX32, UNAME26) or x is the query
    0xffffffff. libseccomp takes one comparison per argument and rule, so "x != query" is spelt with bit 31 (no
    flag uses it): a flag of bits 18..30 set while bit 31 is clear, or bit 31 set while any other bit is clear.
    Only the low 32 bits are compared: the kernel reads the argument as an unsigned int."""
    top = 1 << 31
    flags = [Rule("personality", errno.EPERM, (Condition(0, "MASKED_EQ", (1 << bit) | top, 1 << bit),))
             for bit in range(18, 31)]
    not_query = [Rule("personality", errno.EPERM, (Condition(0, "MASKED_EQ", (1 << bit) | top, top),))
                 for bit in range(31)]
    return flags + not_query


def rules() -> list[Rule]:
    """The whole deny-list (pure): libseccomp ORs the rules of one syscall, ANDs the conditions of one rule."""
    found = [Rule(name, errno.EPERM) for name in DENIED]
    found.append(Rule("clone3", errno.ENOSYS))
    for flag in CLONE_NAMESPACES:
        found.append(Rule("clone", errno.EPERM, (Condition(0, "MASKED_EQ", flag, flag),)))
    for flag in (*CLONE_NAMESPACES, CLONE_NEWTIME):
        found.append(Rule("unshare", errno.EPERM, (Condition(0, "MASKED_EQ", flag, flag),)))
    found += personality_rules()
    for request in (TIOCSTI, TIOCLINUX):  # the request is an int: its upper 32 bits are whatever the caller left
        found.append(Rule("ioctl", errno.EPERM, (Condition(1, "MASKED_EQ", 0xFFFFFFFF, request),)))
    return found


def _compiled() -> SyscallFilter:
    """The filter, built by libseccomp for this host's native ABI; syscalls this kernel's table lacks (``umount`` on
    x86_64) are left out."""
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as exc:  # RuntimeError: the module found no libseccomp.so.2
        raise BackendError(f"the app sandbox's seccomp filter cannot be built: {exc}",
                           hint="install libseccomp2 (Debian: apt-get install libseccomp2) and the `pyseccomp` "
                                "package (scripts/setup.sh)") from None
    native = pyseccomp.system_arch()
    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for rule in rules():
        if pyseccomp.resolve_syscall(native, rule.syscall) < 0:
            continue
        args = [pyseccomp.Arg(c.arg, getattr(pyseccomp, c.op), c.a, c.b) for c in rule.conditions]
        flt.add_rule(pyseccomp.ERRNO(rule.errno), rule.syscall, *args)
    return flt


def program() -> bytes:
    """The filter as the raw BPF program ``bwrap --seccomp FD`` loads (struct sock_filter[], native endianness)."""
    with tempfile.TemporaryFile() as out:
        _compiled().export_bpf(out)
        out.seek(0)
        return out.read()


def write_program(path: Path) -> Path:
    """``program()`` written to ``path`` (root's, 0644: not a secret, but nobody else may change it), atomically:
    a launch that reads it meanwhile sees the old program or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=".seccomp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(program())
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return path


def apply() -> None:
    """Loads the filter into the calling process (and so into everything it execs or forks from now on), with
    no-new-privileges set as libseccomp does by default: what a fork of a zygote calls once it has built its
    sandbox (after its last unshare/setns/mount, which the filter refuses), before the app's code runs."""
    _compiled().load()
