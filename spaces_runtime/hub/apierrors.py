"""The Hub's error answers: ``huggingface_hub`` picks its exception class from the ``X-Error-Code`` header
(``RepoNotFound`` → RepositoryNotFoundError, ``EntryNotFound``, ``RevisionNotFound``) and shows ``X-Error-Message``
(a 403 reads "403 Forbidden: {X-Error-Message}"); see huggingface_hub/utils/_http.py ``hf_raise_for_status``.
The platform's JSON error body stays as it is; these headers are added to it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from spaces_runtime.errors import NotFoundError, SpacesError

ErrorHandler = Callable[[Request, Exception], Awaitable[Response] | Response]
# the paths that name a repository (a space): a 404 there is "no such repository" unless it says otherwise
REPO_PATH = re.compile(r"^/(api/(spaces|repos)/|spaces/)")
PLATFORM = "spaces-runtime serves Spaces only"


class NotSupportedError(SpacesError):
    """A Hub call this platform does not serve: 501, which clients neither retry nor read as "not found"."""

    http_status = 501
    code = "NotSupported"


class EntryNotFoundError(NotFoundError):
    """A file the space does not have."""

    code = "EntryNotFound"


class RevisionNotFoundError(NotFoundError):
    """A revision that is neither ``main`` nor one of the space's kept code versions."""

    code = "RevisionNotFound"


def error_headers(path: str, exc: SpacesError) -> dict[str, str]:
    """The Hub's error headers for ``exc`` raised while answering ``path`` (pure)."""
    headers = {"X-Error-Message": _header_value(exc.message)}
    code = getattr(exc, "code", None)
    if isinstance(exc, EntryNotFoundError | RevisionNotFoundError | NotSupportedError):
        headers["X-Error-Code"] = str(code)
    elif isinstance(exc, NotFoundError) and REPO_PATH.match(path):
        headers["X-Error-Code"] = "RepoNotFound"
    return headers


def _header_value(text: str) -> str:
    """One line of printable ASCII (header values are latin-1, and a newline would end the header)."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")[:500]


def with_hub_headers(handler: ErrorHandler | None) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Wrap the app's SpacesError handler (its body) so that every answer also carries the Hub's headers."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SpacesError)
        if handler is None:
            response: Response = JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.http_status)
        else:
            answer = handler(request, exc)
            response = await answer if isinstance(answer, Awaitable) else answer
        response.headers.update(error_headers(request.url.path, exc))
        return response

    return handle
