"""Readiness probes: the URL that answers once an app can serve, and one short HTTP check of it."""

from __future__ import annotations

import httpx

from spaces_runtime.supervisor.backend import LaunchSpec

PROBE_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


def readiness_url(spec: LaunchSpec, upstream: str) -> str:
    """Where to ask whether the app is up (pure).

    Gradio 6 serves its config both at /config and under GRADIO_ROOT_PATH (verified with gradio 6.31);
    probing under the prefix checks the path the gateway will use. Streamlit serves everything, its health
    check included, only under --server.baseUrlPath. Anything else (docker apps) just has to answer on /.
    """
    base = upstream.rstrip("/")
    prefix = spec.base_path.rstrip("/")
    if spec.sdk == "gradio":
        return f"{base}{prefix}/config"
    if spec.sdk == "streamlit":
        return f"{base}{prefix}/_stcore/health"
    return f"{base}/"


def is_ready_status(spec: LaunchSpec, status: int) -> bool:
    """Gradio and Streamlit must answer 200; a docker app is up once it answers at all without a 5xx."""
    if spec.sdk in ("gradio", "streamlit"):
        return status == 200
    return status < 500


async def probe(client: httpx.AsyncClient, spec: LaunchSpec, upstream: str) -> bool:
    """One readiness check; connection errors and timeouts mean 'not ready yet'."""
    try:
        response = await client.get(readiness_url(spec, upstream), timeout=PROBE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return is_ready_status(spec, response.status_code)
