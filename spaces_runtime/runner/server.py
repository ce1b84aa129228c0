"""The runner's HTTP edge (Starlette on a Unix socket, optionally TCP with a token) and RunnerService."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spaces_runtime.client import CONTENT_TYPE, decode, encode
from spaces_runtime.errors import AuthError, BadInputError, PayloadTooLargeError, SpacesError
from spaces_runtime.runner import catalog
from spaces_runtime.runner.appkit import ADMIN, app_token, read_secret, verify_token
from spaces_runtime.runner.leases import LeaseBoard
from spaces_runtime.runner.metrics import prometheus_text
from spaces_runtime.runner.options import RunnerOptions
from spaces_runtime.runner.scheduler import Scheduler


class _QuietServer(uvicorn.Server):
    """The runner may live inside `spaces serve`; signals belong to the process, not to this server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def error_response(exc: SpacesError) -> Response:
    code = getattr(exc, "code", "unauthorized" if isinstance(exc, AuthError) else "error")
    body: dict[str, Any] = {"code": code, "message": exc.message, "hint": exc.hint}
    headers = {}
    if (retry := getattr(exc, "retry_after_s", None)) is not None:
        body["retry_after_s"] = retry
        headers["Retry-After"] = str(max(1, round(retry)))
    return JSONResponse({"error": body}, status_code=exc.http_status, headers=headers)


class RunnerService:
    """The runner: ``await start()`` listens on the socket (and TCP when configured); ``await stop()``."""

    def __init__(self, settings: Any, **overrides: Any) -> None:
        self.options = RunnerOptions.from_settings(settings, **overrides)
        self.secret = read_secret(self.options.secret_path)
        self.specs = {**catalog.builtin_specs(), **self._uploaded_specs()}
        self.scheduler = Scheduler(self.options, self.specs)
        self.leases = LeaseBoard(self.scheduler.ledger, self.options.max_lease_s)
        self._servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    @property
    def url(self) -> str:
        return f"unix://{self.options.socket_path}"

    @property
    def admin_token(self) -> str:
        return app_token(self.secret, ADMIN)

    async def start(self) -> None:
        await self.scheduler.start()
        path = self.options.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a runner that did not stop cleanly
        await self._listen(uvicorn.Config(self._app(tcp=False), uds=str(path), log_level="warning",
                                          access_log=False, lifespan="off"))
        os.chmod(path, 0o660)
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

    # --- HTTP -------------------------------------------------------------------------------------------
    def _app(self, tcp: bool) -> Starlette:
        def route(path: str, fn: Any, methods: list[str]) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    app_id = self._identify(request, tcp)
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
            route("/v1/apps/{app}/quota", self._quota, ["PUT"]),
            route("/v1/leases", self._lease, ["POST"]),
            route("/v1/leases/{lease}", self._release, ["DELETE"]),
        ])

    def _identify(self, request: Request, tcp: bool) -> str:
        """The calling app: from its signed token; over the local socket an unsigned X-Spaces-App is taken."""
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            app_id = verify_token(self.secret, auth[7:].strip())
            if app_id is None:
                raise AuthError("the runner token is not valid", hint="use the SPACES_RUNNER_TOKEN given to the app")
            return app_id
        if tcp:
            raise AuthError("the runner's TCP port needs a token", hint="send Authorization: Bearer <token>")
        return request.headers.get("x-spaces-app", "anonymous")

    async def _body(self, request: Request, limit: int | None = None) -> bytes:
        limit = limit or self.options.max_payload_bytes
        declared = int(request.headers.get("content-length") or 0)
        too_big = PayloadTooLargeError(f"the request body has {declared} bytes; the limit is {limit}",
                                       hint="send fewer items per request, or smaller arrays")
        if declared > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    async def _predict(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        meta, parts = decode(await self._body(request))
        payload, n = catalog.validate(spec, meta, parts)
        deadline_ms = request.headers.get("x-spaces-deadline-ms")
        deadline = float(deadline_ms) / 1000 if deadline_ms else None
        out_meta, out_parts = await self.scheduler.predict(app_id, spec, payload, n, deadline)
        return Response(encode(out_meta, out_parts), media_type=CONTENT_TYPE)

    async def _list(self, request: Request, app_id: str) -> Response:
        return JSONResponse({"models": self.models()})

    async def _info(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        return JSONResponse(next(m for m in self.models() if m["name"] == spec.name))

    async def _upload(self, request: Request, app_id: str) -> Response:
        name = catalog.canonical(request.path_params["name"])
        existing = self.specs.get(name)
        if existing is not None and (existing.builtin or existing.extra.get("owner") not in (app_id, ADMIN)):
            self._require_admin(app_id, f"model '{name}' belongs to another app")
        meta, parts = decode(await self._body(request, self.options.max_model_bytes))
        data = parts.get("file")
        if not isinstance(data, bytes) or not data:
            raise BadInputError("the upload has no 'file' part")
        folder = self.options.models_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / ("model.pt2" if meta.get("format") == "export" else "model.pt")
        file.write_bytes(data)
        spec = catalog.uploaded_spec(name, meta, file)
        if not zipfile.is_zipfile(file):
            raise BadInputError("the file is not a TorchScript or torch.export archive",
                                        hint="save it with torch.jit.save(torch.jit.script(model), path)")
        (folder / "spec.json").write_text(json.dumps({**meta, "file": file.name, "owner": app_id}))
        if existing is not None:
            await self.scheduler.unload(name)
        spec = replace(spec, extra={"owner": app_id})
        self.specs[name] = spec
        return JSONResponse(spec.public())

    async def _load(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
        body = json.loads(await request.body() or b"{}")
        await self.scheduler.load(spec, pin=bool(body.get("pin")))
        return JSONResponse(next(m for m in self.models() if m["name"] == spec.name))

    async def _unload(self, request: Request, app_id: str) -> Response:
        spec = catalog.resolve(self.specs, request.path_params["name"])
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
