"""Each app instance in a network namespace of its own, on a private bridge only the platform's host side joins.

Chosen over slirp4netns/pasta: the platform runs as root here anyway (uids, cgroups), a veth pair costs nothing
per packet (slirp4netns copies every packet through a user-space TCP stack, which the gateway would pay on every
request), and the gateway reaches the app at a plain address, ``http://10.213.0.N:7860``. What the rules allow:

- the host (the gateway) → app: any port, over the bridge;
- app → the internet: TCP 80/443 and DNS, NATed through the host's own interfaces, as on Hugging Face;
- app → private, link-local and shared addresses (the LAN, the cloud's metadata service at 169.254.169.254, other
  hosts' services, Docker's networks): dropped, except the ranges the operator allows
  (``SPACES_SANDBOX_PRIVATE_OUTBOUND``, e.g. an internal model server); DNS still reaches a private resolver;
- app → the host itself (the control API, the runner's TCP port, anything on any of its addresses): dropped,
  and the host's loopback is not the app's loopback anyway;
- app ↔ app: dropped (bridge port isolation, and the same in the FORWARD chain when bridged traffic is filtered).

Addresses are shared by every platform on the host: a claim is a file per address under /run/spaces-runtime/net,
taken under a host-wide lock; a claim whose namespace is gone (a platform killed with -9) is free again.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spaces_runtime.errors import BackendError

CLAIMS = Path("/run/spaces-runtime/net")
NETNS_DIR = Path("/run/netns")
FORWARD_CHAIN = "SPACES-SBX-FWD"
INPUT_CHAIN = "SPACES-SBX-IN"
DOCKER_CHAIN = "SPACES-DKR-FWD"  # the docker backend's containers (``container_guard_rules``)
OUTBOUND_TCP = "80,443"
# addresses that are not the internet: private (RFC 1918), shared (RFC 6598, carrier NAT), link-local (the
# cloud metadata service), loopback, multicast and reserved
NOT_THE_INTERNET = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                    "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")


@dataclass(frozen=True)
class Lease:
    netns: str  # name under /run/netns
    address: str
    host_veth: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.netns)


def app_mac(tag: str) -> str:
    """The MAC of an instance's eth0, from its lease's 8 hex digits: locally administered, unicast (pure)."""
    return "02:5b:" + ":".join(tag[i:i + 2] for i in range(0, 8, 2))


def gateway_address(subnet: str) -> str:
    """The bridge's own address: the subnet's first (pure)."""
    return str(next(ipaddress.ip_network(subnet).hosts()))


def free_address(subnet: str, claimed: set[str]) -> str:
    """The lowest address of ``subnet`` after the bridge's that is not claimed (pure)."""
    hosts = ipaddress.ip_network(subnet).hosts()
    next(hosts)  # the bridge
    for host in hosts:
        if str(host) not in claimed:
            return str(host)
    raise BackendError(f"every address of the sandbox subnet {subnet} is taken",
                       hint="choose a larger SPACES_SANDBOX_SUBNET")


def firewall_rules(bridge: str, subnet: str, allowed_private: tuple[str, ...] = ()) -> list[list[str]]:
    """iptables commands (without the binary) that set up the chains, in order (pure). Idempotent when run
    after flushing the platform's own chains."""
    web = ["-p", "tcp", "-m", "multiport", "--dports", OUTBOUND_TCP]
    fwd = [
        ["-A", FORWARD_CHAIN, "-i", bridge, "-o", bridge, "-j", "DROP"],
        ["-A", FORWARD_CHAIN, "-o", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", FORWARD_CHAIN, "-i", bridge, "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
        ["-A", FORWARD_CHAIN, "-i", bridge, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
        *(["-A", FORWARD_CHAIN, "-i", bridge, "-d", cidr, *web, "-j", "ACCEPT"] for cidr in allowed_private),
        *(["-A", FORWARD_CHAIN, "-i", bridge, "-d", cidr, "-j", "DROP"] for cidr in NOT_THE_INTERNET),
        ["-A", FORWARD_CHAIN, "-i", bridge, *web, "-j", "ACCEPT"],
        ["-A", FORWARD_CHAIN, "-i", bridge, "-j", "DROP"],
        ["-A", FORWARD_CHAIN, "-o", bridge, "-j", "DROP"],
    ]
    inp = [
        ["-A", INPUT_CHAIN, "-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", INPUT_CHAIN, "-i", bridge, "-j", "DROP"],
    ]
    return fwd + inp


def container_guard_rules(interface: str, allowed_private: tuple[str, ...] = ()) -> list[list[str]]:
    """The same rule for the docker backend's containers (pure): iptables commands for DOCKER_CHAIN, which the
    engine's DOCKER-USER chain jumps to, dropping what the platform's bridge ``interface`` sends to addresses
    that are not the internet. RETURN, not ACCEPT: the engine's own rules still apply to what passes."""
    return [
        ["-A", DOCKER_CHAIN, "-i", interface, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        *(["-A", DOCKER_CHAIN, "-i", interface, "-d", cidr, "-p", "tcp", "-m", "multiport", "--dports",
           OUTBOUND_TCP, "-j", "RETURN"] for cidr in allowed_private),
        *(["-A", DOCKER_CHAIN, "-i", interface, "-d", cidr, "-j", "DROP"] for cidr in NOT_THE_INTERNET),
    ]


def guard_containers(interface: str, allowed_private: tuple[str, ...] = ()) -> None:
    """Install :func:`container_guard_rules` (again: the chain is flushed first) under the host-wide lock."""
    with _host_lock():
        _run("iptables", "-N", DOCKER_CHAIN)
        _must("iptables", "-F", DOCKER_CHAIN)
        for rule in container_guard_rules(interface, allowed_private):
            _must("iptables", *rule)
        if _run("iptables", "-C", "DOCKER-USER", "-j", DOCKER_CHAIN).returncode != 0:
            _must("iptables", "-I", "DOCKER-USER", "1", "-j", DOCKER_CHAIN)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def _must(*argv: str) -> None:
    result = _run(*argv)
    if result.returncode != 0:
        raise BackendError(f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.stdout.strip()}",
                           hint="`spaces doctor` shows whether this host lets the platform make network "
                                "namespaces, veth pairs and firewall rules")


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    CLAIMS.mkdir(parents=True, exist_ok=True)
    with open(CLAIMS.parent / "net.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class Network:
    """The bridge, the firewall chains and the per-instance namespaces on this host."""

    def __init__(self, bridge: str, subnet: str, allowed_private: tuple[str, ...] = ()) -> None:
        self.bridge, self.subnet, self.allowed_private = bridge, subnet, allowed_private
        self._ready = False

    def ensure(self) -> None:
        """The bridge and the rules, once per process (and again after the host lost them)."""
        if self._ready and Path(f"/sys/class/net/{self.bridge}").exists():
            return
        with _host_lock():
            self._ensure_bridge()
            self._ensure_firewall()
        self._ready = True

    def _ensure_bridge(self) -> None:
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            _must("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{gateway_address(self.subnet)}/{prefix}", "dev", self.bridge)
        _must("ip", "link", "set", self.bridge, "up")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")

    def _ensure_firewall(self) -> None:
        for chain in (FORWARD_CHAIN, INPUT_CHAIN):
            _run("iptables", "-N", chain)
            _must("iptables", "-F", chain)
        for rule in firewall_rules(self.bridge, self.subnet, self.allowed_private):
            _must("iptables", *rule)
        for parent, chain in (("FORWARD", FORWARD_CHAIN), ("INPUT", INPUT_CHAIN)):
            if _run("iptables", "-C", parent, "-j", chain).returncode != 0:
                _must("iptables", "-I", parent, "1", "-j", chain)
        nat = ["POSTROUTING", "-s", self.subnet, "!", "-o", self.bridge, "-j", "MASQUERADE"]
        if _run("iptables", "-t", "nat", "-C", *nat).returncode != 0:
            _must("iptables", "-t", "nat", "-A", *nat)

    def claim(self, prefix: str, plumb: bool = True) -> Lease:
        """A fresh namespace named ``prefix-…`` with its veth on the bridge and an address of its own.
        ``plumb`` False: the namespace is only a placeholder that holds the claim; a fork of a zygote makes its
        own network namespace, which ``attach`` puts in the placeholder's place (``plumb`` for an exec after all)."""
        self.ensure()
        with _host_lock():
            address = free_address(self.subnet, _live_claims())
            tag = secrets.token_hex(4)
            lease = Lease(netns=f"{prefix}-{tag}", address=address, host_veth=f"vsb{tag}")
            _must("ip", "netns", "add", lease.netns)  # inside the lock: a claim without its namespace is stale
            (CLAIMS / address).write_text(lease.netns)
        if plumb:
            self.plumb(lease)
        return lease

    def attach(self, lease: Lease, pid: int) -> None:
        """Process ``pid``'s own network namespace becomes the lease's (``ip netns attach``: the name now refers
        to it), plumbed like a fresh one. The fork of a zygote made it inside the zygote's user namespace, so the
        fork (no capability on the host) could not have entered the platform's; root here can plumb its."""
        with _host_lock():  # the placeholder's name never goes missing while a claim is counted
            _must("ip", "netns", "del", lease.netns)
            _must("ip", "netns", "attach", lease.netns, str(pid))
        self.plumb(lease)

    def plumb(self, lease: Lease) -> None:
        """The lease's veth pair, address, route and localhost redirect; released on failure."""
        try:
            self._plumb(lease)
        except BaseException:
            self.release(lease)
            raise

    def _plumb(self, lease: Lease) -> None:
        prefix = ipaddress.ip_network(self.subnet).prefixlen
        peer, mac = f"vsp{lease.host_veth[3:]}", app_mac(lease.host_veth[3:])
        _must("ip", "link", "add", lease.host_veth, "type", "veth", "peer", "name", peer, "address", mac,
              "netns", lease.netns)
        _must("ip", "link", "set", lease.host_veth, "master", self.bridge, "up")
        # the app's MAC and address are the platform's, fixed on the host's side: the bridge learns no address
        # from what the port sends, and the host's neighbour entry is permanent, so no instance can take over
        # another's traffic with forged ARP or frames (a fork of a zygote is in a network namespace the
        # zygote's user namespace owns, where the zygote could change addresses)
        _must("bridge", "link", "set", "dev", lease.host_veth, "isolated", "on", "learning", "off")
        _must("bridge", "fdb", "replace", mac, "dev", lease.host_veth, "master", "static")
        ns = ("ip", "-n", lease.netns)
        _must(*ns, "link", "set", peer, "name", "eth0")
        _must(*ns, "addr", "add", f"{lease.address}/{prefix}", "dev", "eth0")
        _must(*ns, "link", "set", "eth0", "up")
        _must(*ns, "link", "set", "lo", "up")
        _must(*ns, "route", "add", "default", "via", gateway_address(self.subnet))
        # an app that binds 127.0.0.1 (as apps did outside the sandbox) is reached too: what arrives on eth0 goes
        # to the namespace's own loopback, where a 0.0.0.0 listener answers as well
        inside = ("ip", "netns", "exec", lease.netns)
        _must(*inside, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
        _must(*inside, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp",
              "-j", "DNAT", "--to-destination", "127.0.0.1")
        # addresses are reused (a restart claims the one its previous instance gave back): the entry is replaced
        _must("ip", "neigh", "replace", lease.address, "lladdr", mac, "dev", self.bridge, "nud", "permanent")

    def release(self, lease: Lease) -> None:
        _run("ip", "netns", "del", lease.netns)  # its end of the veth pair goes with it, and so the host's
        _run("ip", "link", "del", lease.host_veth)
        _run("ip", "neigh", "del", lease.address, "dev", self.bridge)
        with _host_lock():
            claim = CLAIMS / lease.address
            with contextlib.suppress(OSError):
                if claim.read_text() == lease.netns:
                    claim.unlink()

    def release_leftovers(self, prefix: str) -> None:
        """Namespaces ``prefix-*`` a previous run of this platform left (killed with -9)."""
        if NETNS_DIR.is_dir():
            for ns in NETNS_DIR.iterdir():
                if ns.name.startswith(f"{prefix}-"):
                    _run("ip", "netns", "del", ns.name)
        with _host_lock():
            for claim in CLAIMS.iterdir():
                with contextlib.suppress(OSError):
                    if claim.read_text().startswith(f"{prefix}-"):
                        claim.unlink()


def _live_claims() -> set[str]:
    """Claimed addresses whose namespace still exists; stale claims are removed."""
    live = set()
    for claim in CLAIMS.iterdir():
        with contextlib.suppress(OSError):
            if (NETNS_DIR / claim.read_text()).exists():
                live.add(claim.name)
            else:
                claim.unlink()
    return live

