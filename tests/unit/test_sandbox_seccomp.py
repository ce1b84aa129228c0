"""The seccomp filter's rules, and the filter loaded into a real child process (no bwrap, no root needed): each
denied call answers EPERM (clone3: ENOSYS) while what apps do every day still works."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

from spaces_runtime.sandbox import seccomp

PROBE = r'''
import ctypes, errno, json, os, subprocess, sys, threading
from spaces_runtime.sandbox import seccomp
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

import pyseccomp
NATIVE = pyseccomp.system_arch()

def call(name, *args):  # the number from libseccomp's own table: the probe holds on any architecture
    ctypes.set_errno(0)
    number = pyseccomp.resolve_syscall(NATIVE, name)
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_ulong(a) for a in args])
    return errno.errorcode.get(ctypes.get_errno(), "ok") if result < 0 else "ok"

seccomp.apply()
found = {name: call(*numbers) for name, numbers in json.loads(sys.argv[1]).items()}
child = os.fork()
if child == 0:
    os._exit(7)
found["fork"] = os.waitpid(child, 0)[1] >> 8
worker = threading.Thread(target=lambda: found.__setitem__("thread", "ok"))
worker.start(); worker.join()
found["subprocess"] = subprocess.run([sys.executable, "-c", "print('hi')"], capture_output=True, text=True).stdout
found["unshare_cli"] = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True).stderr
print(json.dumps(found))
'''

# each a syscall's name and its arguments; personality: ADDR_NO_RANDOMIZE, then the query
CALLS = {"unshare_user": ["unshare", 0x10000000], "unshare_files": ["unshare", 0x400], "clone3": ["clone3", 0, 0],
         "keyctl": ["keyctl", 0, 0], "bpf": ["bpf", 0, 0, 0], "perf_event_open": ["perf_event_open", 0, 0, 0, 0, 0],
         "mount": ["mount", 0, 0, 0, 0, 0], "setns": ["setns", 0, 0], "userfaultfd": ["userfaultfd", 0],
         "io_uring": ["io_uring_setup", 1, 0], "personality_no_aslr": ["personality", 0x0040000],
         "personality_query": ["personality", 0xFFFFFFFF]}


def test_rules_cover_the_namespace_flags_of_clone_and_unshare() -> None:
    found = seccomp.rules()
    clone = {r.conditions[0].b for r in found if r.syscall == "clone"}
    unshare = {r.conditions[0].b for r in found if r.syscall == "unshare"}
    assert clone == set(seccomp.CLONE_NAMESPACES)
    assert unshare == {*seccomp.CLONE_NAMESPACES, seccomp.CLONE_NEWTIME}
    assert [r.errno for r in found if r.syscall == "clone3"] == [errno.ENOSYS]


def test_a_filtered_process_is_refused_namespaces_keyrings_bpf_and_still_forks_and_threads() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(CALLS)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for name in ("unshare_user", "keyctl", "bpf", "perf_event_open", "mount", "setns", "userfaultfd", "io_uring",
                 "personality_no_aslr"):
        assert found[name] == "EPERM", (name, found[name])
    assert found["clone3"] == "ENOSYS"  # glibc then falls back to clone, whose flags the filter reads
    assert found["unshare_files"] == "ok" and found["personality_query"] == "ok"
    assert found["fork"] == 7 and found["thread"] == "ok" and found["subprocess"] == "hi\n"
    assert "Operation not permitted" in found["unshare_cli"]
