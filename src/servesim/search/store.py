"""The results store: one SQLite row per finished evaluation, so a search resumes where it stopped."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from servesim.errors import ServesimError


class ResultStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ServesimError(f"--store {self.path} is a folder; give a file name, e.g. {self.path}/search.sqlite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("CREATE TABLE IF NOT EXISTS evaluations (key TEXT PRIMARY KEY, result TEXT NOT NULL)")
            self.db.commit()
            columns = [row[1] for row in self.db.execute("PRAGMA table_info(evaluations)")]
            if columns != ["key", "result"]:
                raise sqlite3.DatabaseError(f"its evaluations table has columns {', '.join(columns)}")
            self.db.execute("BEGIN IMMEDIATE")  # a store that cannot be written fails here, before any candidate runs
            self.db.rollback()
        except (sqlite3.Error, OSError) as e:
            raise ServesimError(f"--store {self.path} cannot be used as a results store ({e}); give a new file "
                                "name or a store written by servesim search") from None  # fmt: skip

    def get(self, key: str) -> dict | None:
        """The stored evaluation, or None; one that cannot be read back (corrupt, or of another shape) is
        evaluated again, as if it were not there."""
        row = self.db.execute("SELECT result FROM evaluations WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        try:
            result = json.loads(row[0])
        except (json.JSONDecodeError, TypeError):
            return None
        return result if isinstance(result, dict) and "feasible" in result and "capacity" in result else None

    def put(self, key: str, result: dict) -> None:
        """Store one evaluation, committed at once: a killed search loses nothing finished."""
        try:
            self.db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?)", (key, json.dumps(result)))
            self.db.commit()
        except sqlite3.Error as e:
            raise ServesimError(f"--store {self.path}: an evaluation could not be stored ({e}); the ones finished "
                                "before it are kept") from None  # fmt: skip

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self.db.close()
