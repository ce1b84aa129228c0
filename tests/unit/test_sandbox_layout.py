"""The sandbox's pure parts: what an app sees (bwrap's options), its uid, its cgroup files and its firewall."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces_runtime.errors import BackendError
from spaces_runtime.sandbox import cgroups, layout, network
from spaces_runtime.sandbox.identity import next_uid


def _plan(**overrides: object) -> layout.SandboxPlan:
    fields: dict[str, object] = dict(
        mounts=(layout.Mount("/usr", "/usr"), layout.Mount("/d/apps/v1", layout.APP_DIR, writable=True),
                layout.Mount("/tmp/d/envs/h", "/tmp/d/envs/h"), layout.Mount("/d/sandbox/data/a", "/data", True)),
        symlinks=(("usr/lib", "/lib"),), masks=(), uid=200000001, gid=200000001, cwd=layout.APP_DIR,
        env={"GRADIO_SERVER_PORT": "7860"}, argv=("/tmp/d/envs/h/bin/python", "app.py"),
        netns="/run/netns/sbx-1", cgroup_procs=("/sys/fs/cgroup/memory/spaces-runtime/x/cgroup.procs",))
    fields.update(overrides)
    return layout.SandboxPlan(**fields)  # type: ignore[arg-type]


def _pairs(args: list[str], option: str) -> list[tuple[str, str]]:
    return [(args[i + 1], args[i + 2]) for i, a in enumerate(args) if a == option]


def test_only_the_listed_folders_are_mounted_and_only_app_and_data_are_writable() -> None:
    args = layout.bwrap_args(_plan())
    assert set(_pairs(args, "--bind")) == {("/d/apps/v1", layout.APP_DIR), ("/d/sandbox/data/a", "/data")}
    assert set(_pairs(args, "--ro-bind")) == {("/usr", "/usr"), ("/tmp/d/envs/h", "/tmp/d/envs/h")}
    assert ("usr/lib", "/lib") in _pairs(args, "--symlink")


def test_namespaces_without_a_user_namespace_and_caps_only_for_setpriv() -> None:
    args = layout.bwrap_args(_plan())
    for option in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"):
        assert option in args
    assert "--unshare-all" not in args and "--unshare-user" not in args  # the uid must be a real host uid
    assert args[args.index("--cap-drop") + 1] == "ALL"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--cap-add"] == list(layout.KEPT_CAPS)


def test_private_tmp_comes_before_mounts_under_the_hosts_tmp_and_their_parents_are_passable() -> None:
    args = layout.bwrap_args(_plan())
    tmpfs = args.index("--tmpfs")
    env_bind = args.index("/tmp/d/envs/h")
    assert args[tmpfs + 1] == "/tmp" and tmpfs < env_bind
    made = [args[i + 3] for i, a in enumerate(args) if a == "--perms" and args[i + 2] == "--dir"]
    assert set(made) == {"/home", "/home/user", "/tmp/d", "/tmp/d/envs"}  # /data's parent is / itself
    assert all(args[i + 1] == "0755" for i, a in enumerate(args) if a == "--perms")


def test_a_folder_inside_a_mount_is_never_chmodded() -> None:
    plan = _plan(mounts=(layout.Mount("/usr", "/usr"), layout.Mount("/usr/local/kit", "/usr/local/kit")))
    args = layout.bwrap_args(plan)
    assert "/usr/local" not in [args[i + 3] for i, a in enumerate(args) if a == "--perms"]


def test_no_value_of_the_apps_environment_is_on_a_command_line() -> None:
    """Any host user reads /proc/PID/cmdline: secrets and the runner token travel as the environment instead."""
    tools = {"sh": "/bin/sh", "nsenter": "/usr/bin/nsenter", "bwrap": "/usr/bin/bwrap", "setpriv": "/usr/bin/setpriv"}
    argv = layout.command(_plan(env={"GRADIO_SERVER_PORT": "7860", "MY_SECRET": "sk-live-51Hq2"}), tools)
    assert not any("sk-live-51Hq2" in a or "MY_SECRET" in a for a in argv)
    assert "--clearenv" not in argv, "bwrap passes the chain's environment (the app's) down unchanged"


def test_launch_chain_joins_cgroups_then_the_netns_then_drops_to_the_spaces_uid() -> None:
    tools = {"sh": "/bin/sh", "nsenter": "/usr/bin/nsenter", "bwrap": "/usr/bin/bwrap", "setpriv": "/usr/bin/setpriv"}
    argv = layout.command(_plan(), tools)
    assert argv[:2] == ["/bin/sh", "-c"] and "cgroup.procs" in argv[2] and argv[2].endswith('exec "$@"')
    assert argv[4:7] == ["/usr/bin/nsenter", "--net=/run/netns/sbx-1", "--"]
    assert argv[7] == "/usr/bin/bwrap"
    drop = argv.index("/usr/bin/setpriv")
    assert argv[drop:drop + 3] == ["/usr/bin/setpriv", "--reuid=200000001", "--regid=200000001"]
    assert {"--clear-groups", "--no-new-privs", "--bounding-set=-all", "--inh-caps=-all"} <= set(argv[drop:])
    assert argv[-2:] == ["/tmp/d/envs/h/bin/python", "app.py"]


def test_the_seccomp_filter_reaches_bwrap_as_an_fd_the_chains_shell_opened() -> None:
    tools = {"sh": "/bin/sh", "nsenter": "/usr/bin/nsenter", "bwrap": "/usr/bin/bwrap", "setpriv": "/usr/bin/setpriv"}
    argv = layout.command(_plan(seccomp="/d/run/seccomp.bpf"), tools)
    assert f"exec {layout.SECCOMP_FD}< /d/run/seccomp.bpf" in argv[2]
    bwrap, drop = argv.index("/usr/bin/bwrap"), argv.index("/usr/bin/setpriv")
    assert argv[bwrap:drop].count("--seccomp") == 1
    assert argv[argv.index("--seccomp") + 1] == str(layout.SECCOMP_FD)
    # no cgroup to join (the build jail): the shell is still there, to open the filter
    bare = layout.command(_plan(seccomp="/d/run/seccomp.bpf", cgroup_procs=(), netns=None), tools)
    assert bare[:2] == ["/bin/sh", "-c"] and "cgroup.procs" not in bare[2] and bare[4] == "/usr/bin/bwrap"
    assert "--seccomp" not in layout.command(_plan(), tools)


def test_system_view_keeps_merged_usr_symlinks_and_skips_what_the_host_lacks() -> None:
    mounts, links = layout.system_view({"usr": None, "etc": None, "lib": "usr/lib", "bin": "usr/bin", "home": None})
    assert [m.dest for m in mounts] == ["/usr", "/etc"]
    assert links == [("usr/bin", "/bin"), ("usr/lib", "/lib")]


def test_the_platforms_own_code_inside_a_system_folder_is_masked() -> None:
    mounts = [layout.Mount("/usr", "/usr")]
    assert layout.platform_masks(["/usr/local/lib/python3.11/site-packages/spaces_runtime", "/work/main/x"],
                                 mounts) == ["/usr/local/lib/python3.11/site-packages/spaces_runtime"]


def test_uids_are_allocated_upwards_never_root_and_refused_when_exhausted() -> None:
    assert next_uid([], 200, 10) == 200
    assert next_uid([200, 201], 200, 10) == 202
    assert next_uid([5, 209], 200, 10) == 200  # the top is taken: the lowest free one
    with pytest.raises(BackendError, match="all 2 sandbox uids"):
        next_uid([200, 201], 200, 2)
    with pytest.raises(BackendError, match="never run as root"):
        next_uid([], 0, 10)


def test_cgroup_v1_plan_sets_memory_cpu_and_pids_in_their_own_hierarchies() -> None:
    plan = cgroups.plan("i1", cgroups.CgroupLimits(512 * 1024 * 1024, 1.5, 256), 1, Path("/cg"), has_memsw=True)
    writes = {str(path): value for path, value in plan.writes}
    assert writes["/cg/memory/spaces-runtime/i1/memory.limit_in_bytes"] == str(512 * 1024 * 1024)
    assert writes["/cg/memory/spaces-runtime/i1/memory.memsw.limit_in_bytes"] == str(512 * 1024 * 1024)
    assert writes["/cg/cpu/spaces-runtime/i1/cpu.cfs_quota_us"] == "150000"
    assert writes["/cg/pids/spaces-runtime/i1/pids.max"] == "256"
    assert [str(p) for p in plan.procs] == [f"/cg/{c}/spaces-runtime/i1/cgroup.procs"
                                            for c in ("memory", "cpu", "pids")]


def test_cgroup_v2_plan_enables_controllers_and_forbids_swap() -> None:
    plan = cgroups.plan("i1", cgroups.CgroupLimits(1024, 2, 64), 2, Path("/cg"))
    writes = [(str(path), value) for path, value in plan.writes]
    assert writes[0] == ("/cg/cgroup.subtree_control", "+memory +cpu +pids")
    assert ("/cg/spaces-runtime/i1/memory.swap.max", "0") in writes
    assert ("/cg/spaces-runtime/i1/cpu.max", "200000 100000") in writes
    assert plan.memory_events == Path("/cg/spaces-runtime/i1/memory.events")


def test_oom_kills_are_read_from_either_cgroup_versions_counters() -> None:
    assert cgroups.oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert cgroups.oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n") == 1
    assert cgroups.oom_kills("oom_kill_disable 0\n") == 0


def test_addresses_skip_the_bridge_and_claimed_ones() -> None:
    assert network.gateway_address("10.213.0.0/16") == "10.213.0.1"
    assert network.free_address("10.213.0.0/16", {"10.213.0.2", "10.213.0.3"}) == "10.213.0.4"
    with pytest.raises(BackendError, match="every address"):
        network.free_address("10.0.0.0/30", {"10.0.0.2"})


def test_an_operator_allowed_private_range_is_let_through_before_the_rest_are_dropped() -> None:
    fwd = [" ".join(r) for r in network.firewall_rules("br", "10.213.0.0/16", ("10.50.0.0/24",))]
    allowed = next(i for i, r in enumerate(fwd) if "-d 10.50.0.0/24" in r)
    assert fwd[allowed].endswith("-d 10.50.0.0/24 -p tcp -m multiport --dports 80,443 -j ACCEPT")
    assert allowed < next(i for i, r in enumerate(fwd) if r.endswith("-d 10.0.0.0/8 -j DROP"))


def test_firewall_lets_apps_out_on_web_ports_only_and_never_into_the_host_or_each_other() -> None:
    rules = [" ".join(r) for r in network.firewall_rules("br", "10.213.0.0/16")]
    fwd = [r for r in rules if network.FORWARD_CHAIN in r]
    assert fwd[0].endswith("-i br -o br -j DROP")  # app to app, first
    assert any("--dports 80,443 -j ACCEPT" in r for r in fwd)
    assert fwd[-2:] == [f"-A {network.FORWARD_CHAIN} -i br -j DROP", f"-A {network.FORWARD_CHAIN} -o br -j DROP"]
    private = [i for i, r in enumerate(fwd) if r.endswith("-d 169.254.0.0/16 -j DROP") or
               r.endswith("-d 10.0.0.0/8 -j DROP")]
    web = next(i for i, r in enumerate(fwd) if "--dports 80,443 -j ACCEPT" in r)
    assert len(private) == 2 and max(private) < web  # the cloud's metadata service and the LAN: never
    inp = [r for r in rules if network.INPUT_CHAIN in r]
    assert inp == [f"-A {network.INPUT_CHAIN} -i br -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                   f"-A {network.INPUT_CHAIN} -i br -j DROP"]
