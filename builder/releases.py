"""When a package version was published, asked of the package index itself.

The JSON form of the simple API (PEP 691) carries each file's ``upload-time`` (PEP 700); pypi.org, its mirrors and
proxies serve it where the older ``/pypi/NAME/VERSION/json`` API is often blocked (it is behind this project's
proxy). ``upload_time`` is the pure part; ``release_time`` does the one HTTP request.
"""

from __future__ import annotations

import re
import ssl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from builder.plan import ERA_SLACK_DAYS, BuildPlan
from builder.requirements import normalise_name
from spaces_runtime.errors import BuildError

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
DEFAULT_INDEX = "https://pypi.org/simple"
TIMEOUT = httpx.Timeout(20.0, connect=10.0)
_ARCHIVE = re.compile(r"\.(tar\.gz|tar\.bz2|zip|tgz)$")


def file_version(filename: str) -> str | None:
    """``gradio-4.44.0-py3-none-any.whl`` and ``gradio-4.44.0.tar.gz`` → "4.44.0"."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return parts[1] if len(parts) >= 5 else None
    stem = _ARCHIVE.sub("", filename)
    return stem.rsplit("-", 1)[1] if stem != filename and "-" in stem else None


def upload_time(files: list[dict[str, Any]], version: str) -> datetime | None:
    """The earliest upload of ``version`` among a simple-API project's files; None when the index lists no
    upload times or not that version."""
    times = [datetime.fromisoformat(str(f["upload-time"]).replace("Z", "+00:00"))
             for f in files if f.get("upload-time") and file_version(str(f.get("filename", ""))) == version]
    return min(times) if times else None


def release_time(name: str, version: str, index_url: str | None = None, ca_bundle: Path | None = None) -> datetime:
    """When ``name==version`` reached the index; BuildError when the index cannot say."""
    index = (index_url or DEFAULT_INDEX).rstrip("/")
    url = f"{index}/{normalise_name(name)}/"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
    try:
        response = httpx.get(url, headers={"Accept": SIMPLE_JSON}, timeout=TIMEOUT, verify=verify,
                             follow_redirects=True)
        response.raise_for_status()
        files = response.json().get("files", [])
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise BuildError(f"could not ask the package index when {name} {version} was released ({url}: {exc})",
                         hint="check that the index is reachable, or set SPACES_ERA_RESOLUTION=false") from None
    found = upload_time(files, version)
    if found is None:
        raise BuildError(f"the package index at {index} lists no upload time for {name} {version}",
                         hint="the index must serve PEP 691 JSON with upload-time (PEP 700); "
                              "or set SPACES_ERA_RESOLUTION=false")
    return found


def era_date(plan: BuildPlan, ca_bundle: Path | None = None) -> tuple[datetime | None, str]:
    """The date a plan resolves as of (None: today) and the build-log line that says which and why. An index
    that cannot say when the SDK was released means today's resolution, announced, rather than a failed build."""
    if plan.era is None:
        if plan.sdk_version and plan.sdk in ("gradio", "streamlit"):
            return None, "==> resolving as of today (the app uses the platform's SDK version or a newer one)"
        return None, "==> resolving as of today"
    try:
        released = release_time(plan.era.package, plan.era.version, plan.index_url, ca_bundle)
    except BuildError as exc:
        return None, f"==> resolving as of today: {exc}"
    as_of = released + timedelta(days=ERA_SLACK_DAYS)
    return as_of, (f"==> resolving as of {as_of:%Y-%m-%d %H:%M} UTC: {plan.era.package} {plan.era.version} was "
                   f"released {released:%Y-%m-%d %H:%M} UTC and {plan.era.reason} (SPACES_ERA_RESOLUTION=false "
                   "resolves as of today)")


def exclude_newer(as_of: datetime | None) -> str | None:
    """uv's --exclude-newer value (RFC 3339, UTC)."""
    return f"{as_of:%Y-%m-%dT%H:%M:%SZ}" if as_of else None
