"""What the Hub API keeps per space beyond its record: the SDK create_repo named, the sleep time and the hardware
tier asked for. A table of its own in the platform's SQLite file (opened as every part opens it: store.open_db).

A row remembers the ``created_at`` of the space it was written for: a space deleted by other means (``spaces
delete``) and made again under the same name does not inherit it.

The supervisor has one sleep time and one hardware tier for every app (SPACES_SLEEP_AFTER_S, SPACES_HARDWARE):
what is stored here is reported by the Hub API (``gcTimeout``, ``hardware.requested``) and does not yet change
when an app sleeps or what it runs on.
"""

from __future__ import annotations

import threading
from pathlib import Path

from spaces_runtime.hub.shapes import HubState
from spaces_runtime.store import SpaceRecord, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS hub_spaces (
    space_id TEXT PRIMARY KEY, space_created_at REAL NOT NULL,
    sdk TEXT, sleep_time INTEGER, hardware TEXT
);"""


class HubStates:
    def __init__(self, db_path: Path) -> None:
        self._db = open_db(db_path, SCHEMA)
        self._lock = threading.Lock()

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
        return state

    def drop(self, space_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM hub_spaces WHERE space_id = ?", (space_id,))
