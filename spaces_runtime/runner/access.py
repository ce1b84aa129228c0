"""Who may change which model: pure decisions, refused with ForbiddenError (HTTP 403).

Every app shares the runner's models, so what one app does to a model others feel. The policy:

- upload a new name: any app; it becomes the model's owner (recorded in its spec.json).
- replace an uploaded model: its owner or the platform (admin token). Built-in models: nobody.
- load without pin: any app (warming a model only costs the LRU order).
- pin, or unload (which also unpins): the platform, or the owner for its own uploaded model.
"""

from __future__ import annotations

from spaces_runtime.errors import ForbiddenError
from spaces_runtime.runner.catalog import ModelSpec
from spaces_runtime.runner.tokens import ADMIN


def owner(spec: ModelSpec) -> str | None:
    return None if spec.builtin else spec.extra.get("owner")


def check_replace(existing: ModelSpec | None, app_id: str) -> None:
    """May ``app_id`` upload a file under ``existing``'s name (None: the name is free)?"""
    if existing is None:
        return
    if existing.builtin:
        raise ForbiddenError(f"model '{existing.name}' is built into the runner and cannot be replaced",
                             hint="upload your model under another name")
    if app_id not in (ADMIN, owner(existing)):
        raise ForbiddenError(f"model '{existing.name}' was uploaded by another app; only that app or the "
                             "platform may replace it", hint="upload your model under another name")


def check_manage(spec: ModelSpec, app_id: str, action: str) -> None:
    """May ``app_id`` ``action`` ("pin" or "unload") ``spec``? Plain loads need no check."""
    if app_id == ADMIN or (owner(spec) is not None and owner(spec) == app_id):
        return
    whose = "a built-in model" if spec.builtin else "a model another app uploaded"
    raise ForbiddenError(f"an app may not {action} '{spec.name}': it is {whose}",
                         hint=f"only the platform (the runner's admin token) or the model's owner may {action} "
                              "it; load it without pin, or upload your own copy")
