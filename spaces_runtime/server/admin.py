"""The platform's own upkeep over REST, for platform admins: garbage collection and backups. The platform owns
its data dir (it may run as another user, or on another machine), so the CLI asks it rather than touching files."""

from __future__ import annotations

import asyncio
import errno
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from spaces_runtime.errors import DiskFullError, SpacesError
from spaces_runtime.housekeeping.backup import write_backup
from spaces_runtime.server.auth import PlatformDep, require_admin

router = APIRouter(prefix="/api/admin", dependencies=[Depends(require_admin)])


@router.post("/gc")
async def gc(p: PlatformDep, dry_run: Annotated[bool, Query()] = False) -> dict[str, Any]:
    """Collect the environments, images and build cache no space uses; ``dry_run=1`` only lists them."""
    if p.housekeeper is None:
        raise SpacesError("this platform was built without housekeeping")
    report = await p.housekeeper.collector.run(dry_run=dry_run)
    return report.as_json()


@router.post("/backup", response_class=FileResponse)
async def backup(p: PlatformDep, logs: Annotated[bool, Query()] = False) -> FileResponse:
    """A consistent snapshot as a .tar.gz (store, the code each space serves, recorded locks, token; logs if
    asked). Restore it offline: `spaces restore FILE --data-dir NEW` before `spaces serve --data-dir NEW`."""
    scratch_root = p.settings.data_dir / "tmp"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="backup-", dir=scratch_root))
    archive = scratch / "spaces-backup.tar.gz"
    try:
        await asyncio.to_thread(write_backup, p.settings, archive, logs)
    except OSError as exc:
        _remove(scratch)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError.at(scratch_root) from None
        raise
    except BaseException:
        _remove(scratch)
        raise
    return FileResponse(archive, media_type="application/gzip", filename=archive.name,
                        background=BackgroundTask(_remove, scratch))


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
