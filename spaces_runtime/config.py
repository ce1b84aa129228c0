"""The one Settings object: built from SPACES_* environment variables, then CLI flags at the edge.

No other module reads ``os.environ``; components receive the Settings (or the fields they need).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """templates/ beside the packages in a checkout, or the copy shipped inside the wheel."""
    for candidate in (PACKAGE_DIR.parent / "templates", PACKAGE_DIR / "_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("templates/ is missing from this installation of spaces-runtime")


def _path_list(value: object) -> object:
    """SPACES_PYTHONS=/opt/py312/bin/python3:/opt/pythons — colon-separated, like PATH."""
    return [part for part in value.split(os.pathsep) if part.strip()] if isinstance(value, str) else value


PathList = Annotated[list[Path], NoDecode, BeforeValidator(_path_list)]


def _networks(value: object) -> object:
    """SPACES_TRUSTED_PROXIES=10.0.0.5,192.168.0.0/16 — comma-separated addresses or CIDRs, each checked here."""
    parts = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
    for part in parts if isinstance(parts, list) else ():
        try:
            ipaddress.ip_network(str(part), strict=False)
        except ValueError:
            raise ValueError(f"trusted proxy {part!r} is not an IP address or a CIDR such as 10.0.0.0/8") from None
    return parts


NetworkList = Annotated[list[str], NoDecode, BeforeValidator(_networks)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACES_", extra="ignore")

    # where the platform listens and keeps its state
    host: str = "127.0.0.1"
    port: int = 7000
    data_dir: Path = Path.home() / ".local" / "share" / "spaces-runtime"
    backend: Literal["process", "docker", "swarm"] = "process"
    # the host name apps are reached under as {owner}-{name}.{public_host}; defaults to "localhost:{port}"
    public_host: str | None = None
    # whether browsers resolve {owner}-{name}.{public_host} (wildcard DNS; *.localhost always does): then every app
    # has an origin of its own, apart from the platform's pages (browsers' visits to path links are sent there).
    # None: yes unless public_host is an IP address, which has no subdomains
    host_links: bool | None = None
    # failed web sign-ins allowed per account, and per client address, within sign_in_window_s; more answer 429
    sign_in_failures_per_account: int = 5
    sign_in_failures_per_address: int = 10
    sign_in_window_s: float = 60.0
    # a web session ends after this long without a request, and this long after sign-in, whichever comes first
    session_idle_s: float = 3 * 86400
    session_absolute_s: float = 14 * 86400
    # reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For and X-Forwarded-Proto are
    # believed: the client's address (the sign-in throttle's) and scheme (Secure cookies) are then the ones they
    # forward. Nobody else's are: a client cannot name another address for itself
    trusted_proxies: NetworkList = Field(default_factory=list)
    # the CLI's token (SPACES_TOKEN wins over `spaces login`'s file and the local admin token); on the server, a
    # token given here is one more valid token of the admin
    token: str | None = None
    # the CLI's target, and where `spaces login` keeps the token
    server: str = "http://127.0.0.1:7000"
    config_dir: Path = Path.home() / ".config" / "spaces-runtime"

    # uploads
    max_upload_bytes: int = 200 * 1024 * 1024
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    max_upload_files: int = 20_000
    # bytes of LFS objects each space may hold: 1 GiB, the Hub's storage limit for a free Space repository. An
    # object stored once for several spaces counts in full for each (a space's usage never depends on what others
    # hold). A push or Hub commit that would pass it is refused before any byte is sent
    space_storage_bytes: int = 1024**3
    # `spaces gc` leaves an LFS object uploaded within this alone even when no commit references it yet: a push
    # uploads its objects before git sends the commits that reference them
    lfs_gc_grace_s: float = 3600.0

    # environments
    python_version: str = "3.11"
    default_gradio_version: str = "6.31.0"
    default_streamlit_version: str = "1.67.0"
    # None: jailed builds share one per build identity (sandbox.buildjail), unjailed ones uv's own default
    uv_cache_dir: Path | None = None
    index_url: str | None = None
    extra_index_url: str | None = None
    ca_bundle: Path | None = None  # for TLS-intercepting proxies; reaches pip/uv during builds only

    build_timeout_s: float = 30 * 60  # a build still running then is stopped: BUILD_ERROR with the log tail

    # supervision
    startup_timeout_s: float = 30 * 60
    probe_interval_s: float = 1.0
    restart_backoff_initial_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    crash_loop_restarts: int = 5  # restarts inside crash_loop_window_s before RUNTIME_ERROR
    crash_loop_window_s: float = 120.0
    stop_grace_s: float = 10.0
    sleep_after_s: float = 48 * 3600  # idle apps sleep after this (as on Hugging Face); 0: never
    liveness_interval_s: float = 10.0  # a RUNNING app is health-checked this often...
    liveness_timeout_s: float = 5.0
    liveness_failures: int = 3  # ...and restarted after this many unanswered checks in a row
    log_max_bytes: int = 2 * 1024 * 1024

    # docker backend
    base_image: str = "python:3.11-slim"
    hardware: str = "cpu-basic"
    docker_network: str = "spaces-runtime"

    # swarm backend (spaces_runtime.supervisor.swarm): the platform's registry, where every node pulls from;
    # None: the manager's swarm address at swarm_registry_port
    swarm_registry: str | None = None
    swarm_registry_port: int = 5000
    swarm_registry_binary: Path = Path("/usr/bin/docker-registry")
    # the model runner on swarm (spaces_runtime.swarm.runners): a global service on the runner nodes, whose TCP
    # edge (token-guarded) each node publishes on this port for the platform's control calls
    swarm_runner_port: int = 7870
    swarm_runner_image: str | None = None  # None: built on the manager from this package (builder.docker.runner)
    swarm_runner_builtin_models: bool = True  # the built-in models' packages in that image (about 500 MB)
    # wheels the runner image's build looks at first (pip --find-links), e.g. a local torch build; None: the index
    runner_find_links: Path | None = None

    # model runner
    runner_enabled: bool = True
    runner_socket: Path | None = None  # default: {data_dir}/runner/runner.sock
    runner_tcp_port: int | None = None
    runner_device: Literal["auto", "cpu", "cuda"] = "auto"
    runner_memory_budget_mb: int = 4096
    runner_tcp_host: str = "127.0.0.1"
    runner_max_batch: int = 32
    runner_max_delay_ms: float = 4.0
    runner_max_queue: int = 1024
    runner_max_queue_per_app: int = 256
    runner_quota_device_s: float | None = None  # device-seconds an app may use per window; None: no quota
    runner_quota_window_s: float = 60.0
    runner_max_payload_mb: int = 32
    runner_threads: int | None = None  # torch threads in the worker; None: cores - 1
    runner_pinned: list[str] = Field(default_factory=list)
    runner_preload: list[str] = Field(default_factory=list)

    examples_dir: Path | None = Field(default=None, description="deploy these app folders on start")

    # interpreters and era-true builds (builder/pythons.py, builder/venv.py)
    pythons: PathList = Field(
        default_factory=list, description="interpreters or folders of them, searched before PATH and pyenv/uv")
    python_downloads: bool = False  # let uv download a python_version no installed interpreter has
    python_nearest: bool = False  # a missing python_version gets the nearest installed one (announced) instead
    era_resolution: bool = True  # an app pinning an older SDK resolves as of that SDK's release

    @property
    def public_link_host(self) -> str:
        return self.public_host or f"localhost:{self.port}"

    @property
    def host_links_available(self) -> bool:
        if self.host_links is not None:
            return self.host_links
        hostname = self.public_link_host.rsplit(":", 1)[0] if "]" not in self.public_link_host else ""
        return bool(hostname) and not hostname.replace(".", "").isdigit()

    @property
    def listens_beyond_loopback(self) -> bool:
        return self.host not in ("127.0.0.1", "localhost", "::1")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "spaces.db"

    @property
    def apps_dir(self) -> Path:
        return self.data_dir / "apps"

    @property
    def envs_dir(self) -> Path:
        return self.data_dir / "envs"

    @property
    def runner_socket_path(self) -> Path:
        # a directory of its own: the docker backend mounts it into containers, which must not see data_dir
        return self.runner_socket or self.data_dir / "runner" / "runner.sock"

    # housekeeping (spaces_runtime.housekeeping): what no space uses is collected by `spaces gc`, and
    # automatically whenever what the platform keeps (environments, images, build cache, its own uv cache) is over
    # the budget; None: no automatic collection
    disk_budget_bytes: int | None = None
    gc_interval_s: float = 600.0  # how often the budget is checked
    gc_cache_idle_s: float = 7 * 24 * 3600.0  # `spaces gc` leaves build cache used more recently than this

    # the process backend's sandbox (spaces_runtime.sandbox): each app as its own uid, in its own namespaces, under
    # its hardware tier's cgroup limits. A host lacking a feature is named at start and apps are refused, unless:
    allow_unsandboxed: bool = False  # SPACES_ALLOW_UNSANDBOXED=1: run them anyway, WITHOUT isolation (logged)
    sandbox: bool = True  # SPACES_SANDBOX=0: never sandbox (benchmarks, one trusted user); logged at start
    sandbox_uid_base: int = 200_000_000  # apps' uids: one per space from here, above every host user's
    sandbox_uid_count: int = 1_000_000
    # the host's one record of which (data dir, space) runs as which uid: every platform of the host allocates from
    # it, so two platforms on one host (production beside staging, tests) never hand one uid to two apps
    sandbox_uid_registry: Path = Path("/var/lib/spaces-runtime/uids.db")
    sandbox_subnet: str = "10.213.0.0/16"  # the private bridge's; every app instance gets an address of it
    sandbox_bridge: str = "spaces-br0"
    # private ranges apps may still reach on TCP 80/443 (comma-separated CIDRs: an internal model server); every
    # other private, link-local (cloud metadata) and shared address is dropped
    sandbox_private_outbound: str = ""
    sandbox_memory_mb: int | None = None  # ceilings under every hardware tier's (small hosts, tests); None: the tier
    sandbox_cpus: float | None = None
    sandbox_pids: int | None = None
    # each space's /data on a disk of its own of this size (a sparse loop-mounted ext4 image: it costs only what is
    # written); past it the app gets ENOSPC, never the host's disk full. 0: /data is a plain folder of the host's
    sandbox_data_quota_mb: int = 20480
    # apps fork from a zygote per (environment, SDK) that has imported the SDK (spaces_runtime.zygote), then enter
    # the same sandbox; the zygote imports it in a sandbox of its own (a user namespace where it is nobody on the
    # host, no network, nothing of the data dir). SPACES_ZYGOTE=0: every app is exec'd
    zygote: bool = True

    # per-space secrets (spaces_runtime.auth.secrets): sealed with the key in this file, made 0600 in a 0700 folder
    # on first use; never under apps/ or envs/ (apps read those). None: {data_dir}/keys/secrets.key
    secrets_key_file: Path | None = None

    @property
    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.data_dir / "keys" / "secrets.key"
