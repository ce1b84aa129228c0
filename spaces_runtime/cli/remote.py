"""The CLI's view of a platform: a thin httpx client over the REST API, errors mapped back into the tree."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from spaces_runtime.appfiles import pack
from spaces_runtime.errors import AuthError, ForbiddenError, NotFoundError, ServerUnreachableError, SpacesError


class PlatformClient:
    def __init__(self, server: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"cannot reach the platform at {self.server} ({exc})",
                                         hint="start it with `spaces serve`, or set --server / SPACES_SERVER") from exc
        raise_for_error(response)
        return response.json()

    def deploy(self, space_id: str, folder: Path, private: bool | None = None) -> dict[str, Any]:
        params = {} if private is None else {"private": str(private).lower()}
        return self._call("PUT", f"/api/spaces/{space_id}", content=pack(folder), params=params,
                          headers={"Content-Type": "application/gzip"})

    def spaces(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/spaces")

    def get(self, space_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/spaces/{space_id}")

    def models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/models")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any REST call (``path`` from /api on), errors mapped into the tree."""
        return self._call(method, path, **kwargs)

    def action(self, space_id: str, verb: str) -> dict[str, Any]:
        if verb == "delete":
            return self._call("DELETE", f"/api/spaces/{space_id}")
        return self._call("POST", f"/api/spaces/{space_id}/{verb}")

    def gc(self, dry_run: bool) -> dict[str, Any]:
        """The platform collects what no space uses (or, ``dry_run``, lists it)."""
        return self._call("POST", "/api/admin/gc", params={"dry_run": int(dry_run)}, timeout=600.0)

    def download_backup(self, target: Path, logs: bool) -> None:
        """The platform's snapshot (a .tar.gz, which holds its token: written mode 0600) into ``target``."""
        try:
            with self._http.stream("POST", "/api/admin/backup", params={"logs": int(logs)},
                                   timeout=httpx.Timeout(60.0, read=None)) as response:
                raise_for_error(response)
                with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            target.unlink(missing_ok=True)
            raise ServerUnreachableError(f"lost the platform at {self.server} ({exc})") from exc

    def log_text(self, space_id: str, kind: str) -> str:
        try:
            response = self._http.get(f"/api/spaces/{space_id}/logs/{kind}", params={"follow": 0})
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"cannot reach the platform at {self.server} ({exc})") from exc
        raise_for_error(response)
        return response.text

    def follow_log(self, space_id: str, kind: str) -> Iterator[str]:
        """Lines of a log as they are written; ends when the server ends the stream (build done)."""
        try:
            with connect_sse(self._http, "GET", f"/api/spaces/{space_id}/logs/{kind}", params={"follow": 1},
                             timeout=httpx.Timeout(10.0, read=None)) as source:
                raise_for_error(source.response)
                for event in source.iter_sse():
                    if event.event == "end":
                        return
                    yield from event.data.split("\n")
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"lost the platform at {self.server} ({exc})") from exc


def raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    if response.is_stream_consumed is False:
        response.read()
    try:
        body = response.json()
        message, hint = body.get("message") or body.get("detail"), body.get("hint")
    except ValueError:
        message, hint = response.text.strip() or response.reason_phrase, None
    if isinstance(message, list):  # FastAPI's validation errors
        message = "; ".join(str(item.get("msg", item)) for item in message)
    kind = {401: AuthError, 403: ForbiddenError, 404: NotFoundError}.get(response.status_code, SpacesError)
    raise kind(f"{message} (HTTP {response.status_code})", hint=hint)
