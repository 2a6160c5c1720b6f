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
        except (sqlite3.Error, OSError) as e:
            raise ServesimError(f"--store {self.path} cannot be used as a results store ({e}); give a new file "
                                "name or a store written by servesim search") from None  # fmt: skip

    def get(self, key: str) -> dict | None:
        row = self.db.execute("SELECT result FROM evaluations WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, result: dict) -> None:
        """Store one evaluation, committed at once: a killed search loses nothing finished."""
        self.db.execute("INSERT OR REPLACE INTO evaluations VALUES (?, ?)", (key, json.dumps(result)))
        self.db.commit()

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    def close(self) -> None:
        self.db.close()
