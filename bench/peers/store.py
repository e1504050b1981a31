"""The storage the Python peers share: one SQLite file in WAL mode with synchronous=FULL, one row
per inbound message keyed by its wamid (so ./x bench peers can count what was kept)."""

import json
import os
import sqlite3

SCHEMA = """CREATE TABLE IF NOT EXISTS messages (
    wamid TEXT PRIMARY KEY,
    wa_from TEXT,
    type TEXT,
    timestamp TEXT,
    body TEXT
)"""
INSERT = "INSERT OR IGNORE INTO messages (wamid, wa_from, type, timestamp, body) VALUES (?, ?, ?, ?, ?)"


def connect() -> sqlite3.Connection:
    db = sqlite3.connect(os.environ["DB"], timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(SCHEMA)
    db.commit()
    return db


def row(message: dict) -> tuple:
    return (
        message["id"],
        message.get("from"),
        message.get("type"),
        message.get("timestamp"),
        json.dumps(message),
    )
