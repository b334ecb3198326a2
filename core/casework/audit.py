"""The audit log: append-only and hash-chained.

Each entry stores the sha256 of its own content (time, kind, operator, case, payload as canonical
JSON) and of the entry before it; its own hash is sha256(previous hash + content hash). Editing an
entry breaks its content hash, removing or reordering entries breaks the link to the one before,
and removing the newest entries shows against the head, which is written in the same transaction.
Appends run inside the caller's transaction, so a record and its entry are committed together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import Connection, text

from core.casework.records import AuditCheck, AuditEntry

GENESIS = "0" * 64


def canonical_json(data) -> str:
    """One byte-exact text per value: sorted keys, no spaces, floats as Python's shortest repr."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(at: str, kind: str, operator: str, case_id: int | None, payload_json: str) -> str:
    content = canonical_json(
        {"at": at, "kind": kind, "operator": operator, "case_id": case_id, "payload": payload_json}
    )
    return sha256_hex(content.encode())


def chain_hash(prev_sha256: str, content_sha256: str) -> str:
    return sha256_hex((prev_sha256 + content_sha256).encode())


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def append(connection: Connection, kind: str, operator: str, payload: dict, case_id: int | None = None) -> int:
    """Add one entry in the caller's (write-locked) transaction; returns its sequence number."""
    head = connection.execute(text("SELECT seq, entry_sha256 FROM audit_head WHERE id = 1")).first()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    at = now_iso()
    payload_json = canonical_json(payload)
    content = content_hash(at, kind, operator, case_id, payload_json)
    entry = chain_hash(prev, content)
    connection.execute(
        text(
            "INSERT INTO audit_log (seq, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, "
            "entry_sha256) VALUES (:seq, :at, :kind, :operator, :case_id, :payload, :content, :prev, :entry)"
        ),
        dict(
            seq=seq, at=at, kind=kind, operator=operator, case_id=case_id, payload=payload_json, content=content,
            prev=prev, entry=entry,
        ),
    )  # fmt: skip
    connection.execute(
        text(
            "INSERT INTO audit_head (id, seq, entry_sha256) VALUES (1, :seq, :entry) "
            "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, entry_sha256 = excluded.entry_sha256"
        ),
        dict(seq=seq, entry=entry),
    )
    return seq


def _row_to_entry(row) -> AuditEntry:
    seq, at, kind, operator, case_id, payload_json, content, prev, entry = row
    try:
        payload = json.loads(payload_json)
    except (TypeError, ValueError):
        payload = {"unreadable": str(payload_json)}
    return AuditEntry(seq, at, kind, operator, case_id, payload, content, prev, entry)


_COLUMNS = "seq, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, entry_sha256"


def entries(connection: Connection, kind: str | None = None) -> Iterator[AuditEntry]:
    query = f"SELECT {_COLUMNS} FROM audit_log" + (" WHERE kind = :kind" if kind else "") + " ORDER BY seq"
    for row in connection.execute(text(query), {"kind": kind} if kind else {}):
        yield _row_to_entry(row)


def entry(connection: Connection, seq: int) -> AuditEntry | None:
    row = connection.execute(text(f"SELECT {_COLUMNS} FROM audit_log WHERE seq = :seq"), {"seq": seq}).first()
    return _row_to_entry(row) if row else None


def head(connection: Connection) -> tuple[int, str]:
    row = connection.execute(text("SELECT seq, entry_sha256 FROM audit_head WHERE id = 1")).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def verify(connection: Connection) -> AuditCheck:
    """Walk the chain from the first entry; stop at the first one that was altered, removed or
    moved, and name it."""
    previous_hash, expected_seq, count = GENESIS, 1, 0

    def bad(seq: int, problem: str) -> AuditCheck:
        return AuditCheck(False, count, previous_hash, seq, problem)

    rows = connection.execute(
        text(
            "SELECT seq, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, entry_sha256 "
            "FROM audit_log ORDER BY seq"
        )
    )
    for seq, at, kind, operator, case_id, payload_json, content, prev, entry_hash in rows:
        if seq != expected_seq:
            return bad(expected_seq, f"entry {expected_seq} is missing: removed from the log (next is {seq})")
        if content_hash(at, kind, operator, case_id, payload_json) != content:
            return bad(seq, f"entry {seq} ({kind}) was altered: its content no longer matches its hash")
        if chain_hash(prev, content) != entry_hash:
            return bad(seq, f"entry {seq} ({kind}) was altered: its chain hash is wrong")
        if prev != previous_hash:
            return bad(
                seq,
                f"entry {seq} ({kind}) does not follow entry {seq - 1}: entries were removed or reordered",
            )
        previous_hash, expected_seq, count = entry_hash, seq + 1, count + 1
    head_seq, head_hash = head(connection)
    if head_seq != count or head_hash != previous_hash:
        if head_seq > count:
            return bad(count + 1, f"entries {count + 1} to {head_seq} were removed (the log's head records {head_seq})")
        return bad(head_seq + 1 if head_seq < count else count, "the log's head does not match its newest entry")
    return AuditCheck(True, count, previous_hash)
