"""Health probes: the URL that answers once an app can serve, one short HTTP check of it, and the liveness
policy that decides when a running app that stopped answering counts as hung."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from spaces_runtime import sdk_eras
from spaces_runtime.supervisor.backend import Instance, LaunchSpec

PROBE_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


def readiness_url(spec: LaunchSpec, upstream: str) -> str:
    """Where to ask whether the app is up (pure): ``readiness_path`` on ``upstream``."""
    return upstream.rstrip("/") + readiness_path(spec)


def readiness_path(spec: LaunchSpec) -> str:
    """The path that answers once the app can serve (pure).

    Gradio serves its config both at /config and under GRADIO_ROOT_PATH (verified with gradio 4.44, 5.9 and
    6.31); probing under the prefix checks the path the gateway will use. Streamlit serves everything, its
    health check included, only under --server.baseUrlPath, at a path that moved in 1.18 (``sdk_eras``).
    Anything else (docker apps) just has to answer on /.
    """
    if spec.sdk in ("gradio", "streamlit"):
        return f"{spec.base_path.rstrip('/')}/{sdk_eras.health_path(spec.sdk, spec.sdk_version)}"
    return "/"


def timeout_reason(spec: LaunchSpec, instance: Instance) -> str:
    """Why an app that never answered its readiness probe failed."""
    return (f"the app did not become ready within {spec.startup_timeout_s:g} s "
            f"(no answer at {readiness_url(spec, instance.upstream)})")


def is_ready_status(spec: LaunchSpec, status: int) -> bool:
    """Gradio and Streamlit must answer 200; a docker app is up once it answers at all without a 5xx."""
    if spec.sdk in ("gradio", "streamlit"):
        return status == 200
    return status < 500


async def probe(client: httpx.AsyncClient, spec: LaunchSpec, upstream: str,
                timeout: httpx.Timeout = PROBE_TIMEOUT) -> bool:
    """One readiness (or liveness) check; connection errors and timeouts mean 'not answering'."""
    try:
        response = await client.get(readiness_url(spec, upstream), timeout=timeout)
    except httpx.HTTPError:
        return False
    return is_ready_status(spec, response.status_code)


@dataclass(frozen=True)
class LivenessPolicy:
    """How a RUNNING app is checked for hangs (pure).

    Every ``interval_s`` the readiness URL is asked again with ``timeout_s``; ``failures`` unanswered checks in a
    row mean the app is hung (a deadlock, a stopped process, a handler holding the GIL) and it is restarted like
    a crashed one. A single slow answer is not a hang: a busy app gets interval_s * failures to recover.

    Nor is an app that answered its visitors since the previous check: on a host starved of CPU a busy app's
    health check can miss its timeout again and again while it still streams to 50 WebSockets, and restarting it
    would drop them all. A hung app answers nobody, so what the gateway relays from it is proof of progress that a
    hang cannot fake (CPU time can: a handler spinning with the GIL held burns CPU and answers nothing).
    """

    interval_s: float = 10.0
    timeout_s: float = 5.0
    failures: int = 3

    def due(self, last_checked: float, now: float) -> bool:
        return self.interval_s > 0 and now - last_checked >= self.interval_s

    def count(self, failures_so_far: int, answered: bool, served: bool = False) -> int:
        """Unanswered checks in a row after this one; ``served``: the app answered visitors meanwhile."""
        return 0 if answered or served else failures_so_far + 1

    def is_hung(self, failures_in_a_row: int) -> bool:
        return failures_in_a_row >= self.failures

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 2.0))
