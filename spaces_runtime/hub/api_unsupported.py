"""What the Hub serves and this platform does not: a 501 with a JSON error that says so (``X-Error-Message`` for
huggingface_hub), never a hang, and never a 404 that a client would read as "no such repository" and retry with
another name or revision. The Hub API's own paths for Spaces are in hub/api.py, api_files.py and api_repos.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spaces_runtime.hub.apierrors import PLATFORM, NotSupportedError

router = APIRouter(tags=["hub"])
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
# first path segment under /api → what it is on the Hub
KINDS = {"models": "model repositories", "datasets": "dataset repositories", "kernels": "kernel repositories",
         "buckets": "storage buckets", "collections": "collections", "jobs": "jobs", "scheduled-jobs": "jobs",
         "inference-endpoints": "Inference Endpoints", "papers": "papers", "daily_papers": "papers",
         "posts": "posts", "notifications": "notifications"}
# features of a space the Hub has and this platform does not
# (only names no platform route uses: the platform's own routes under /api/spaces/{id}/ come after these)
FEATURES = {"discussions": "discussions and pull requests", "branch": "branches", "tag": "tags",
            "super-squash": "squashing history", "lfs-files": "LFS file management", "volumes": "volumes",
            "dev-mode": "dev mode", "user-access-request": "gated access", "likers": "the list of likers",
            "resource-group": "resource groups"}
SPACE_WIDE = {"semantic-search": "semantic search (list_spaces(search=...) filters by name)",
              "templates": "Space templates", "zero-gpu": "ZeroGPU"}


def _refuse(what: str) -> None:
    raise NotSupportedError(f"{PLATFORM}: {what} are not served here",
                            hint="see the README's table of huggingface_hub calls for what works")


for _kind, _what in KINDS.items():
    def _kind_route(request: Request, _w: str = _what) -> None:
        _refuse(_w)

    router.add_api_route(f"/api/{_kind}/{{rest:path}}", _kind_route, methods=ALL_METHODS, include_in_schema=False)
    if _kind != "models":  # GET /api/models is the runner's list (hub/api.py answers Hub clients with a 501)
        router.add_api_route(f"/api/{_kind}", _kind_route, methods=ALL_METHODS, include_in_schema=False)

for _feature, _what in FEATURES.items():
    def _feature_route(request: Request, _w: str = _what) -> None:
        _refuse(_w)

    _base = f"/api/spaces/{{owner}}/{{name}}/{_feature}"
    for _path in (_base, f"{_base}/{{rest:path}}"):
        router.add_api_route(_path, _feature_route, methods=ALL_METHODS, include_in_schema=False)

for _feature, _what in SPACE_WIDE.items():
    def _wide_route(request: Request, _w: str = _what) -> None:
        _refuse(_w)

    for _path in (f"/api/spaces/{_feature}", f"/api/spaces/{_feature}/{{rest:path}}"):
        router.add_api_route(_path, _wide_route, methods=ALL_METHODS, include_in_schema=False)


@router.api_route("/{owner}/{name}/resolve/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
@router.api_route("/datasets/{owner}/{name}/resolve/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
def model_files(owner: str, name: str, rest: str) -> None:
    """hf_hub_download of a model or a dataset (a space's files are at /spaces/OWNER/NAME/resolve/...)."""
    _refuse("model and dataset files")
