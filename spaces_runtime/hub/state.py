"""What the Hub API keeps per space beyond its record: the SDK create_repo named, the sleep time and the hardware
tier asked for. A table of its own in the platform's SQLite file (opened as every part opens it: store.open_db).

A row remembers the ``created_at`` of the space it was written for: a space deleted by other means (``spaces
delete``) and made again under the same name does not inherit it.

The sleep time is applied: every change reaches the supervisor (``on_sleep_time``), which lets the space sleep
after it (-1: never) instead of after SPACES_SLEEP_AFTER_S. The hardware tier asked for is reported by the Hub API
(``hardware.requested``) and does not yet change what an app runs on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from spaces_runtime.hub.shapes import HubState
from spaces_runtime.store import SpaceRecord, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS hub_spaces (
    space_id TEXT PRIMARY KEY, space_created_at REAL NOT NULL,
    sdk TEXT, sleep_time INTEGER, hardware TEXT
);"""


class HubStates:
    def __init__(self, db_path: Path, on_sleep_time: Callable[[str, int | None], None] | None = None) -> None:
        self._db = open_db(db_path, SCHEMA)
        self._lock = threading.Lock()
        self.on_sleep_time = on_sleep_time  # (space id, seconds or None for the platform's default)

    def sleep_times(self, records: list[SpaceRecord]) -> dict[str, int]:
        """The sleep time each of ``records`` was given (rows of a space deleted and made again are not its)."""
        with self._lock:
            rows = {r["space_id"]: r for r in self._db.execute("SELECT * FROM hub_spaces WHERE sleep_time IS NOT NULL")}
        return {r.id: int(rows[r.id]["sleep_time"]) for r in records
                if r.id in rows and rows[r.id]["space_created_at"] == r.created_at}

    def get(self, record: SpaceRecord) -> HubState:
        with self._lock:
            row = self._db.execute("SELECT * FROM hub_spaces WHERE space_id = ?", (record.id,)).fetchone()
        if row is None or row["space_created_at"] != record.created_at:
            return HubState()
        return HubState(sdk=row["sdk"], sleep_time=row["sleep_time"], hardware=row["hardware"])

    def change(self, record: SpaceRecord, sdk: str | None = None, sleep_time: int | None = None,
               hardware: str | None = None) -> HubState:
        """Set what is given (None: keep it as it is); returns the state after."""
        old = self.get(record)
        state = HubState(sdk=sdk or old.sdk, sleep_time=old.sleep_time if sleep_time is None else sleep_time,
                         hardware=hardware or old.hardware)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO hub_spaces (space_id, space_created_at, sdk, sleep_time, hardware) "
                "VALUES (?,?,?,?,?)",
                (record.id, record.created_at, state.sdk, state.sleep_time, state.hardware))
        if self.on_sleep_time is not None:
            self.on_sleep_time(record.id, state.sleep_time)
        return state

    def drop(self, space_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM hub_spaces WHERE space_id = ?", (space_id,))
        if self.on_sleep_time is not None:
            self.on_sleep_time(space_id, None)
