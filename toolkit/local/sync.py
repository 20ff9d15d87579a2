"""Folders kept in step with S3 while the job runs: checkpoints and intermediate output.

A background thread looks at each folder every few seconds and uploads the files that are new or
changed since their last upload; a final pass runs when the job ends. Deleting a local file does
not delete its copy (the platform keeps uploaded checkpoints too).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from toolkit.local.storage import Location, Storage, walk_files

log = logging.getLogger("toolkit")
DEFAULT_INTERVAL = 5.0


@dataclass(frozen=True)
class SyncedFolder:
    local: Path
    remote: Location
    label: str


class Syncer(threading.Thread):
    def __init__(self, storage: Storage, folders: list[SyncedFolder], interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__(name="toolkit-sync", daemon=True)
        self.storage = storage
        self.folders = folders
        self.interval = interval
        self.seen: dict[Path, tuple[int, int]] = {}
        self.uploaded: dict[str, int] = {f.label: 0 for f in folders}
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def sync_once(self) -> None:
        """Upload what changed; an error is logged and retried on the next pass."""
        with self._lock:
            for folder in self.folders:
                for name, path in walk_files(folder.local):
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    stamp = (st.st_size, st.st_mtime_ns)
                    if self.seen.get(path) == stamp:
                        continue
                    try:
                        self.storage.upload_file(path, folder.remote.join(*name.split("/")))
                    except Exception as exc:
                        message = f"{folder.label}: cannot upload {name}: {exc}"
                        if message not in self.errors:
                            self.errors.append(message)
                            log.warning("%s", message)
                        continue
                    self.seen[path] = stamp
                    self.uploaded[folder.label] += 1

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sync_once()

    def finish(self) -> Optional[str]:
        """Stop the thread, run the final pass, and return the last error, if the final pass had one."""
        self._stop_event.set()
        if self.is_alive():
            self.join()
        self.errors.clear()
        self.sync_once()
        return self.errors[-1] if self.errors else None
