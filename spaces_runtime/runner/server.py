"""The runner's edges and RunnerService: frames on a Unix socket (see ``frames``), optionally HTTP on TCP.

Every request carries a token signed by this runner (``tokens.app_token``): each app gets its own, the platform
holds the admin one. The token is the identity that quotas and fair turns count by; a request without a valid
one is refused with 401 on either edge, so the socket may be reachable by any local user or container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spaces_runtime.appkit.wire import CONTENT_TYPE, Body, decode, encode_buffers
from spaces_runtime.errors import AuthError, BadInputError, PayloadTooLargeError, SpacesError
from spaces_runtime.runner import access, catalog, modelfiles
from spaces_runtime.runner.frames import FrameServer, asgi_call
from spaces_runtime.runner.leases import LeaseBoard
from spaces_runtime.runner.metrics import prometheus_text
from spaces_runtime.runner.options import RunnerOptions
from spaces_runtime.runner.scheduler import Scheduler
from spaces_runtime.runner.tokens import ADMIN, app_token, read_secret, verify_token


class _QuietServer(uvicorn.Server):
    """The runner may live inside `spaces serve`; signals belong to the process, not to this server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


PREDICT_PATH = re.compile(r"^/v1/models/([^/?]+)/predict$")


def error_body(exc: SpacesError) -> bytes:
    """``{"error": {code, message, hint[, retry_after_s]}}``: what the client turns back into ``exc``'s class."""
    code = getattr(exc, "code", "unauthorized" if isinstance(exc, AuthError) else "error")
    body: dict[str, Any] = {"code": code, "message": exc.message, "hint": exc.hint}
    if (retry := getattr(exc, "retry_after_s", None)) is not None:
        body["retry_after_s"] = retry
    return json.dumps({"error": body}).encode()


def error_response(exc: SpacesError) -> Response:
    headers = {}
    if (retry := getattr(exc, "retry_after_s", None)) is not None:
        headers["Retry-After"] = str(max(1, round(retry)))
    return Response(error_body(exc), status_code=exc.http_status, headers=headers, media_type="application/json")


class RunnerService:
    """The runner: ``await start()`` listens on the socket (and TCP when configured); ``await stop()``."""

    def __init__(self, settings: Any, **overrides: Any) -> None:
        self.options = RunnerOptions.from_settings(settings, **overrides)
        self.secret = read_secret(self.options.secret_path)
        self.specs = {**catalog.builtin_specs(), **self._uploaded_specs()}
        self.scheduler = Scheduler(self.options, self.specs)
        self.leases = LeaseBoard(self.scheduler.ledger, self.options.max_lease_s)
        self._servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self._socket_app = self._app(tcp=False)
        self._frames = FrameServer(self._on_frame, self._refuse)

    @property
    def url(self) -> str:
        return f"unix://{self.options.socket_path}"

    @property
    def admin_token(self) -> str:
        return app_token(self.secret, ADMIN)

    async def start(self) -> None:
        await self.scheduler.start()
        path = self.options.socket_path
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            os.chmod(path.parent, 0o755)  # containers mount this directory; their uid 1000 must traverse it
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a runner that did not stop cleanly
        await self._frames.start(path)
        os.chmod(path, 0o666)  # anyone may connect; nothing is answered without a token this runner signed
        if self.options.tcp_port is not None:
            await self._listen(uvicorn.Config(self._app(tcp=True), host=self.options.tcp_host,
                                              port=self.options.tcp_port, log_level="warning",
                                              access_log=False, lifespan="off"))
        await self.preload(self.options.preload)

    async def _listen(self, config: uvicorn.Config) -> None:
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()  # raises the bind error
            await asyncio.sleep(0.01)
        self._servers.append((server, task))

    async def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        await asyncio.gather(*(t for _, t in self._servers), return_exceptions=True)
        await self._frames.stop()
        await self.scheduler.stop()
        with contextlib.suppress(FileNotFoundError):
            self.options.socket_path.unlink()

    # --- what the platform's REST API calls ------------------------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """For GET /api/models: name, task, format, size_bytes, loaded, resident_bytes, device, pinned, ..."""
        return self.scheduler.models()

    def metrics(self) -> dict[str, Any]:
        return self.scheduler.snapshot()

    def metrics_text(self) -> str:
        return prometheus_text(self.scheduler.snapshot())

    async def preload(self, names: Any) -> list[str]:
        """Load the runner models among ``names`` (an app's HF ``models:`` list); others are ignored."""
        loaded = []
        for name in names:
            spec = self.specs.get(catalog.canonical(str(name)))
            if spec is not None:
                await self.scheduler.load(spec)
                loaded.append(spec.name)
        return loaded

    def _uploaded_specs(self) -> dict[str, catalog.ModelSpec]:
        specs = {}
        for meta_file in sorted(self.options.models_dir.glob("*/spec.json")):
            meta = json.loads(meta_file.read_text())
            spec = catalog.uploaded_spec(meta_file.parent.name, meta, meta_file.parent / meta["file"])
            specs[spec.name] = replace(spec, extra={"owner": meta.get("owner")})
        return specs

    # --- the socket's frames ---------------------------------------------------------------------------
    async def _on_frame(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Body]:
        """Predictions are answered here, the per-call path; everything else goes through the Starlette app."""
        match = PREDICT_PATH.match(path) if method == "POST" else None
        if match is None:
            return await asgi_call(self._socket_app, method, path, headers, body)
        try:
            app_id = self._identify(headers, tcp=False)
            return 200, await self._predict_body(app_id, urllib.parse.unquote(match[1]), body, headers)
        except SpacesError as exc:
            return exc.http_status, error_body(exc)

    def _refuse(self, method: str, path: str, size: int) -> tuple[int, Body] | None:
        """A body over its limit is answered before it is kept (model uploads have their own limit)."""
        upload = method == "PUT" and path.startswith("/v1/models/")
        limit = self.options.max_model_bytes if upload else self.options.max_payload_bytes
        if size <= limit:
            return None
        exc = _too_big(size, limit)
        return exc.http_status, error_body(exc)

    # --- HTTP -------------------------------------------------------------------------------------------
    def _app(self, tcp: bool) -> Starlette:
        def route(path: str, fn: Any, methods: list[str]) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    app_id = self._identify(request.headers, tcp)
                    return await fn(request, app_id)
                except SpacesError as exc:
                    return error_response(exc)
            return Route(path, endpoint, methods=methods)

        return Starlette(routes=[
            route("/v1/models/{name}/predict", self._predict, ["POST"]),
            route("/v1/models", self._list, ["GET"]),
            route("/v1/models/{name}", self._info, ["GET"]),
            route("/v1/models/{name}", self._upload, ["PUT"]),
            route("/v1/models/{name}/load", self._load, ["POST"]),
            route("/v1/models/{name}/unload", self._unload, ["POST"]),
            route("/v1/metrics", self._metrics_json, ["GET"]),
            route("/metrics", self._metrics_text, ["GET"]),
            route("/v1/status", self._status, ["GET"]),
            route("/v1/apps/{app:path}/quota", self._quota, ["PUT"]),  # app ids are owner/name
            route("/v1/leases", self._lease, ["POST"]),
            route("/v1/leases/{lease}", self._release, ["DELETE"]),
        ])

    def _identify(self, headers: Mapping[str, str], tcp: bool) -> str:
        """The calling app, from the token this runner signed for it; never from what the caller claims."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            where = "the runner's TCP port" if tcp else "the runner"
            raise AuthError(f"{where} answers only requests with a token, and this one sent none",
                            hint="send Authorization: Bearer $SPACES_RUNNER_TOKEN (apps on the platform have "
                                 "it in their environment and spaces_runtime.client sends it)")
        app_id = verify_token(self.secret, auth[7:].strip())
        if app_id is None:
            raise AuthError("the runner token is not valid: this runner did not sign it",
                            hint="use the SPACES_RUNNER_TOKEN given to the app, or the runner's admin token")
        return app_id

    async def _body(self, request: Request, limit: int | None = None) -> bytes:
        limit = limit or self.options.max_payload_bytes
        declared = int(request.headers.get("content-length") or 0)
        if declared > limit:
            raise _too_big(declared, limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_big(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _predict(self, request: Request, app_id: str) -> Response:
        body = await self._predict_body(app_id, request.path_params["name"], await self._body(request),
                                        request.headers)
        return Response(b"".join(body), media_type=CONTENT_TYPE)

    async def _predict_body(self, app_id: str, name: str, data: bytes, headers: Mapping[str, str]
                            ) -> list[bytes | memoryview]:
        spec = catalog.resolve(self.specs, name)
        meta, parts = decode(data)
        payload, n = catalog.validate(spec, meta, parts)
        deadline_ms = headers.get("x-spaces-deadline-ms")
        deadline = float(deadline_ms) / 1000 if deadline_ms else None
        out_meta, out_parts = await self.scheduler.predict(app_id, spec, payload, n, deadline)
        return encode_buffers(out_meta, out_parts)

    async def _list(self, request: Request, app_id: str) -> Response:
        return JSONResponse({"models": self.models()})

    async def _info(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        return JSONResponse(next(m for m in self.models() if m["name"] == spec.name))

    async def _upload(self, request: Request, app_id: str) -> Response:
        name = catalog.check_name(catalog.canonical(request.path_params["name"]))  # before any path is made
        access.check_replace(self.specs.get(name), app_id)
        meta, parts = decode(await self._body(request, self.options.max_model_bytes))
        data = parts.get("file")
        if not isinstance(data, bytes) or not data:
            raise BadInputError("the upload has no 'file' part")
        folder = self.options.models_dir / name
        catalog.uploaded_spec(name, meta, folder)  # the declaration's errors, before anything is written
        with modelfiles.staged(folder, data, meta.get("format", "torchscript")) as upload:
            modelfiles.check_archive(upload.path)
            await self.scheduler.check(catalog.uploaded_spec(name, meta, upload.path))
            access.check_replace(self.specs.get(name), app_id)  # the name may have been taken meanwhile
            live = modelfiles.commit(folder, upload, {**meta, "owner": app_id})
        existing = self.specs.get(name)
        spec = self.specs[name] = replace(catalog.uploaded_spec(name, meta, live), extra={"owner": app_id})
        if existing is not None:
            await self.scheduler.unload(name)  # the worker drops the old version; the next call loads this one
        modelfiles.prune(folder)
        return JSONResponse(spec.public())

    async def _load(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        pin = bool(json.loads(await request.body() or b"{}").get("pin"))
        if pin:
            access.check_manage(spec, app_id, "pin")
        await self.scheduler.load(spec, pin=pin)
        return JSONResponse(next(m for m in self.models() if m["name"] == spec.name))

    async def _unload(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        access.check_manage(spec, app_id, "unload")
        await self.scheduler.unload(spec.name)
        return JSONResponse(next(m for m in self.models() if m["name"] == spec.name))

    async def _metrics_json(self, request: Request, app_id: str) -> Response:
        return JSONResponse(self.metrics())

    async def _metrics_text(self, request: Request, app_id: str) -> Response:
        return Response(self.metrics_text(), media_type="text/plain; version=0.0.4")

    async def _status(self, request: Request, app_id: str) -> Response:
        snap = self.scheduler.snapshot()
        return JSONResponse({"worker": snap["worker"], "device": snap["device_memory"].get("device"),
                             "app": app_id, "models": len(self.specs)})

    async def _quota(self, request: Request, app_id: str) -> Response:
        self._require_admin(app_id, "only the platform sets quotas")
        body = json.loads(await request.body() or b"{}")
        limit = body.get("device_s")
        self.scheduler.ledger.limits[request.path_params["app"]] = None if limit is None else float(limit)
        return JSONResponse({"app": request.path_params["app"], "device_s": limit,
                             "window_s": self.scheduler.ledger.window_s})

    async def _lease(self, request: Request, app_id: str) -> Response:
        body = json.loads(await request.body() or b"{}")
        lease = await self.leases.acquire(app_id, float(body.get("duration_s", 60)))
        return JSONResponse({"lease": lease.id, "duration_s": lease.duration_s})

    async def _release(self, request: Request, app_id: str) -> Response:
        used = self.leases.release(request.path_params["lease"])
        return JSONResponse({"used_s": round(used, 3)})

    def _require_admin(self, app_id: str, why: str) -> None:
        if app_id != ADMIN:
            raise AuthError(why, hint="use the runner's admin token")


def _too_big(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"the request body has {size} bytes; the limit is {limit}",
                                hint="send fewer items per request, or smaller arrays")
