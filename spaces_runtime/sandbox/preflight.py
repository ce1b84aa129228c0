"""What this host lets the sandbox use, checked by doing it once (`spaces doctor`, and `spaces serve` at start).

A missing feature is named, never worked around: without it the platform refuses to run apps unless the operator
sets SPACES_ALLOW_UNSANDBOXED=1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.errors import SpacesError
from spaces_runtime.sandbox import cgroups, seccomp

TOOLS = {"bwrap": "bubblewrap", "setpriv": "util-linux", "nsenter": "util-linux", "ip": "iproute2",
         "bridge": "iproute2", "iptables": "iptables", "sh": "dash"}
PROBE_UID = 65534  # nobody: the drop-privileges check needs some unprivileged uid


@dataclass(frozen=True)
class Check:
    feature: str
    ok: bool
    detail: str


def tools() -> dict[str, str]:
    found = {}
    for name in TOOLS:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if path:
            found[name] = path
    return found


def missing(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def run_checks() -> list[Check]:
    have = tools()
    checks = [Check("root", os.geteuid() == 0,
                    "runs as root" if os.geteuid() == 0 else
                    f"runs as uid {os.geteuid()}: per-app uids, network namespaces and cgroups need root")]
    absent = [f"{name} (Debian package {TOOLS[name]})" for name in TOOLS if name not in have]
    checks.append(Check("tools", not absent, "all present" if not absent else "missing: " + ", ".join(absent)))
    if not checks[0].ok or absent:
        return checks
    checks.append(_namespaces(have))
    checks.append(_seccomp(have))
    checks.append(_network())
    checks.extend(_cgroups())
    return checks


def _namespaces(have: dict[str, str]) -> Check:
    argv = [have["bwrap"], "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "--", have["setpriv"], f"--reuid={PROBE_UID}", f"--regid={PROBE_UID}", "--clear-groups",
            "--no-new-privs", "--", have["sh"], "-c", "test \"$(id -u)\" = " + str(PROBE_UID)]
    result = _run(argv)
    ok = result.returncode == 0
    return Check("mount, pid, ipc, uts namespaces and uid drop (bwrap + setpriv)", ok,
                 "work" if ok else f"refused: {result.stderr.strip()[-300:]}")


def _seccomp(have: dict[str, str]) -> Check:
    """The filter compiles here and bwrap loads it: a user namespace is then refused inside."""
    feature = "seccomp filter (libseccomp, bwrap --seccomp)"
    try:
        with tempfile.TemporaryDirectory() as folder:
            program = seccomp.write_program(Path(folder) / "seccomp.bpf")
            argv = [have["sh"], "-c", f"exec 9< {program} && exec \"$@\"", "probe", have["bwrap"],
                    "--ro-bind", "/", "/", "--seccomp", "9", "--", have["setpriv"], f"--reuid={PROBE_UID}",
                    f"--regid={PROBE_UID}", "--clear-groups", "--no-new-privs", "--", have["sh"], "-c",
                    "! unshare -U true 2>/dev/null"]
            result = _run(argv)
    except (SpacesError, OSError) as exc:
        return Check(feature, False, str(exc))
    ok = result.returncode == 0
    return Check(feature, ok, "loaded" if ok else f"refused: {result.stderr.strip()[-300:] or 'unshare -U worked'}")


def _network() -> Check:
    tag = secrets.token_hex(3)  # two platforms (or a platform and `spaces doctor`) may check at once
    name = f"spaces-doctor-{tag}"
    result = _run(["ip", "netns", "add", name])
    _run(["ip", "netns", "del", name])
    veth = _run(["ip", "link", "add", f"vdoc{tag}", "type", "veth", "peer", "name", f"vdop{tag}"])
    _run(["ip", "link", "del", f"vdoc{tag}"])
    fw = _run(["iptables", "-S", "FORWARD"])
    ok = result.returncode == 0 and veth.returncode == 0 and fw.returncode == 0
    why = " ".join(r.stderr.strip() for r in (result, veth, fw) if r.returncode != 0)
    return Check("network namespaces, veth pairs, iptables", ok, "work" if ok else f"refused: {why[-300:]}")


def _cgroups() -> list[Check]:
    version = cgroups.version()
    found = []
    controllers = cgroups.V1_CONTROLLERS if version == 1 else ("memory cpu pids",)
    for controller in controllers:
        base = cgroups.ROOT / controller if version == 1 else cgroups.ROOT
        probe = base / f"spaces-doctor-{secrets.token_hex(3)}"
        try:
            probe.mkdir()
            detail = "writable"
            if version == 2:
                have = set((cgroups.ROOT / "cgroup.controllers").read_text().split())
                lacking = {"memory", "cpu", "pids"} - have
                detail = "writable" if not lacking else f"controllers not enabled: {' '.join(sorted(lacking))}"
            found.append(Check(f"cgroup v{version} {controller}", detail == "writable", detail))
        except OSError as exc:
            found.append(Check(f"cgroup v{version} {controller}", False, f"{base}: {exc.strerror}"))
        finally:
            if probe.is_dir():
                probe.rmdir()
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(argv, 127, "", str(exc))


def report(checks: list[Check]) -> list[str]:
    """Lines for `spaces doctor` and the start-up log."""
    lines = [f"{'ok ' if c.ok else 'NO '} {c.feature}: {c.detail}" for c in checks]
    lacking = missing(checks)
    if lacking:
        lines.append("the sandbox is UNAVAILABLE (missing: " + "; ".join(c.feature for c in lacking) + "): apps "
                     "will not run unless SPACES_ALLOW_UNSANDBOXED=1, which runs them without any isolation")
    else:
        lines.append(f"the sandbox is available (cgroup v{cgroups.version()})")
    return lines
