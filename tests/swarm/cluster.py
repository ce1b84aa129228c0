"""A three-node Docker Swarm on this one machine, for the swarm tests and bench: a manager and two workers.

Each node is its own ``dockerd`` (own --data-root, --exec-root, pidfile, unix socket, config file) in its own
network namespace, joined by a veth pair to a bridge made here on a private test subnet (10.214.0.0/24; the
process sandbox uses 10.213.0.0/16 and spaces-br0). The host reaches every node at its address through the bridge.

Why these choices:
- Every engine is started with ``--insecure-registry 10.214.0.0/24``: the platform's registry listens on the
  manager's address (plain HTTP), and a worker's loopback is its own namespace's, so the engines' built-in
  "127.0.0.0/8 is insecure" rule cannot cover the workers. On real hosts the same line goes in daemon.json for
  the manager's private address (or the registry gets TLS); nothing leaves the test subnet here.
- Node engines start empty and nothing can be pulled from the internet, so the base and SDK images the builder
  needs are copied from the host engine into the manager's (``docker save | docker load``, which keeps image ids,
  so the builder's tags still match and no SDK image is rebuilt). Workers get app images only from the registry.
- The host's own engine sets the FORWARD policy to DROP and br_netfilter sends bridged frames through it, so the
  test bridge's traffic is accepted, and masqueraded out as the host's own engine does for its containers: the
  builds on the manager install an app's requirements from the package index like every docker-backend build.
  The rules are removed at the end.
- Memory: each node's engine and its containers run under a memory cgroup of NODE_MEMORY (2.5 GiB), so the
  cluster can never hold more than 7.5 GiB of this 24 GiB machine whatever the tests deploy.
- Swarm's dispatcher heartbeat is lowered to 2 s so a stopped worker is seen down in seconds, not ~15 s.
- Worker w1's engine advertises one GPU (``node-generic-resources``, as an NVIDIA host's daemon.json does, with a
  made-up id): the platform labels GPU nodes from what engines report, so w1 is the swarm's GPU node and the
  model runner's global service runs there, not on the manager. No code here touches a device.

``stop`` undoes everything in reverse, each step on its own, so a failed start leaves no netns, bridge, veth,
dockerd, mount, cgroup or iptables rule behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

PREFIX = "spt"  # every name made here starts with it: spt-br0, spt-mgr (netns), spt-mgr-h (host end of a veth)
SUBNET = "10.214.0"
BRIDGE = f"{PREFIX}-br0"
BRIDGE_IP = f"{SUBNET}.1"
NODE_MEMORY = 2560 * 1024 * 1024
ENGINE_WAIT_S = 60.0
HEARTBEAT = "2s"
GPU_NODE = "w1"  # its engine reports a GPU (see above)
RULES = (["FORWARD", "-i", BRIDGE, "-j", "ACCEPT"],
         ["FORWARD", "-o", BRIDGE, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
         ["POSTROUTING", "-t", "nat", "-s", f"{SUBNET}.0/24", "!", "-o", BRIDGE, "-j", "MASQUERADE"])


def sh(*argv: str, check: bool = True, netns: str | None = None, timeout: float = 300,
       quiet: bool = False) -> str | None:
    """stdout; a failure raises when ``check``, else is None when ``quiet`` (and "" otherwise)."""
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    if done.returncode != 0 and quiet:
        return None
    return done.stdout


@dataclass
class Node:
    name: str  # "mgr", "w1", "w2"; the swarm node's hostname is the netns name (each engine has its own UTS ns)
    ip: str
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cgroup(self) -> Path:
        v1 = Path("/sys/fs/cgroup/memory")
        return (v1 if v1.is_dir() else Path("/sys/fs/cgroup")) / self.netns

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=120)

    def docker(self, *args: str, timeout: float = 300) -> str:
        return sh("docker", "-H", self.docker_host, *args, timeout=timeout) or ""


@dataclass
class Cluster:
    root: Path
    nodes: list[Node] = field(default_factory=list)
    runner_image: str | None = None  # the model runner's image, once loaded into the GPU node's engine
    _rules: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [Node(name, f"{SUBNET}.{i + 2}", self.root / name) for i, name in enumerate(("mgr", "w1", "w2"))]

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    # --- making it -------------------------------------------------------------------------------------
    def start(self) -> Cluster:
        self._leftovers()
        self._bridge()
        for node in self.nodes:
            self._namespace(node)
            self._cgroup(node)
            self.start_engine(node)
        self._swarm()
        return self

    def _leftovers(self) -> None:
        """A previous run killed before its teardown (kill -9 of pytest) must not make this one fail: its engines
        are still in their cgroups, its rules in the tables."""
        for node in self.nodes:
            for group in _node_cgroups(node):
                _kill_all(group)
                _remove_cgroup(group)
        for rule in RULES:
            while sh("iptables", "-D", *rule, check=False, quiet=True) is not None:
                pass
        for name in ("mgr", "w1", "w2"):
            sh("ip", "link", "del", f"{PREFIX}-{name}-h", check=False)
            sh("ip", "netns", "del", f"{PREFIX}-{name}", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    def _bridge(self) -> None:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for rule in RULES:
            sh("iptables", "-I", *rule)
            self._rules.append(rule)

    def _namespace(self, node: Node) -> None:
        host_end = f"{node.netns}-h"
        sh("ip", "netns", "add", node.netns)
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        sh("ip", "link", "set", host_end, "master", BRIDGE, "up")
        sh("ip", "addr", "add", f"{node.ip}/24", "dev", "eth0", netns=node.netns)
        sh("ip", "link", "set", "eth0", "up", netns=node.netns)
        sh("ip", "link", "set", "lo", "up", netns=node.netns)
        sh("ip", "route", "add", "default", "via", BRIDGE_IP, netns=node.netns)

    def _cgroup(self, node: Node) -> None:
        node.cgroup.mkdir(exist_ok=True)
        v1 = (node.cgroup / "memory.limit_in_bytes")
        (v1 if v1.exists() else node.cgroup / "memory.max").write_text(str(NODE_MEMORY))

    def start_engine(self, node: Node) -> None:
        """(Re)start the node's dockerd inside its namespace and cgroup; returns once it answers."""
        node.root.mkdir(parents=True, exist_ok=True)
        config = node.root / "daemon.json"  # not /etc/docker/daemon.json, which is the host engine's
        settings: dict[str, object] = {"insecure-registries": [f"{SUBNET}.0/24"], "labels": [f"node={node.name}"]}
        if node.name == GPU_NODE:
            settings["node-generic-resources"] = ["NVIDIA-GPU=spt-fake-gpu-0"]
        config.write_text(json.dumps(settings))
        # its own UTS namespace too: swarm names a node by its hostname, and three nodes called alike could not
        # be told apart by `spaces nodes drain NAME`
        # nsenter --net, not `ip netns exec`: that one also makes a mount namespace with a fresh /sys, where the
        # cgroup hierarchies are missing ("Devices cgroup isn't mounted") and the engine's mounts would be private
        argv = ["nsenter", f"--net=/run/netns/{node.netns}", "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec dockerd "$@"', node.netns, "--config-file", str(config),
                "--data-root", str(node.root / "data"), "--exec-root", str(node.root / "exec"),
                "--pidfile", str(node.root / "docker.pid"), "--host", node.docker_host,
                "--cgroup-parent", f"/{node.netns}", "--storage-driver", "overlay2"]
        log = (node.root / "dockerd.log").open("ab")
        cgroup = node.cgroup / "cgroup.procs"

        def enter_cgroup() -> None:  # the engine, its containerd and every container count against the bound
            cgroup.write_text(str(os.getpid()))

        node.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=enter_cgroup,
                                        start_new_session=True)
        deadline = time.monotonic() + ENGINE_WAIT_S
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"dockerd of {node.name} exited: {(node.root / 'dockerd.log').read_text()[-2000:]}")
            with contextlib.suppress(docker.errors.DockerException):
                if node.client().ping():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd of {node.name} did not answer in {ENGINE_WAIT_S:g} s")

    def stop_engine(self, node: Node, timeout: float = 30) -> None:
        process, node.process = node.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def _swarm(self) -> None:
        manager = self.manager
        manager.docker("swarm", "init", "--advertise-addr", manager.ip, "--dispatcher-heartbeat", HEARTBEAT)
        token = manager.docker("swarm", "join-token", "-q", "worker").strip()
        for worker in self.workers:
            worker.docker("swarm", "join", "--token", token, "--advertise-addr", worker.ip, f"{manager.ip}:2377")

    def load_images(self, names: list[str], node: Node | None = None) -> None:
        """Copy images from the host engine into a node's (the manager's unless named; ids kept), in one
        uncompressed stream."""
        into = node or self.manager
        save = subprocess.Popen(["docker", "save", *names], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", into.docker_host, "load", "-q"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=600)
        assert save.stdout is not None
        save.stdout.close()
        if save.wait(60) != 0 or load.returncode != 0:
            raise RuntimeError(f"copying {names} into {into.netns} failed: {load.stderr[-2000:]}")

    # --- tearing it down -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Kill every process of every node at once (engines, containerd, shims, containers: all sit in the
        node's cgroups), then unmount, delete the namespaces, the bridge and the rule. A graceful engine stop
        would stop each container with its grace period first, which costs minutes for nothing here."""
        for node in self.nodes:
            for group in _node_cgroups(node):
                _kill_all(group)
        for node in self.nodes:
            if node.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(10)
                node.process = None
            self._unmount(node.root)
            # the veth goes with the namespace only once nothing holds that any more: delete it now
            sh("ip", "link", "del", f"{node.netns}-h", check=False)
            sh("ip", "netns", "del", node.netns, check=False)
            for group in _node_cgroups(node):
                _remove_cgroup(group)
        sh("ip", "link", "del", BRIDGE, check=False)
        while self._rules:
            sh("iptables", "-D", *self._rules.pop(), check=False)
        # `rm -rf`, not shutil.rmtree: the engines' image layers are GBs of small files, and it is several times faster
        sh("rm", "-rf", *(str(node.root) for node in self.nodes), check=False)

    @staticmethod
    def _unmount(root: Path) -> None:
        """What the killed engine left mounted under its directories (overlay layers, netns bind mounts)."""
        prefix = str(root.resolve()) + "/"
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            sh("umount", "-l", target, check=False)


def _node_cgroups(node: Node) -> list[Path]:
    """The node's cgroup in every hierarchy: the memory one made here, the others made by its engine."""
    return [group for group in Path("/sys/fs/cgroup").glob(f"*/{node.netns}") if group.is_dir()] + (
        [node.cgroup] if node.cgroup.is_dir() and node.cgroup.parent == Path("/sys/fs/cgroup") else [])


def _kill_all(group: Path) -> None:
    for procs in _walk(group, "cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def _walk(group: Path, name: str | None = None) -> list[Path]:
    """Folders under ``group`` (or the files called ``name`` in them), tolerating cgroups that vanish while they
    are read: the engine removes its containers' cgroups as their processes die (pathlib's rglob raises then)."""
    found = []
    for root, dirs, files in os.walk(group, onerror=lambda _: None):
        if name is None:
            found += [Path(root) / d for d in dirs]
        elif name in files:
            found.append(Path(root) / name)
    return found


def _remove_cgroup(group: Path) -> None:
    """Deepest first; a cgroup whose last process is still dying refuses rmdir for a moment."""
    deadline = time.monotonic() + 10
    children = sorted(_walk(group), key=lambda p: len(p.parts), reverse=True)
    for child in [*children, group]:
        while True:
            try:
                child.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                _kill_all(child)
                time.sleep(0.1)


def leftovers() -> list[str]:
    """What of a cluster is still on this machine (empty after ``stop``)."""
    found = [f"netns {n}" for n in sh("ip", "netns", "list").split() if n.startswith(PREFIX + "-")]
    found += [f"link {line.split()[0]}" for line in sh("ip", "-br", "link").splitlines()
              if line.startswith(PREFIX + "-")]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{PREFIX}-*")]
    found += [f"mount {m}" for m in Path("/proc/self/mounts").read_text().split() if f"/{PREFIX}-" in m]
    return found
