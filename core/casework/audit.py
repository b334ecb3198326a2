"""The audit log: append-only and hash-chained.

Each entry stores the sha256 of its own content (time, kind, operator, case, payload as canonical
JSON) and of the entry before it; its own hash is sha256(previous hash + content hash). Editing an
entry breaks its content hash, removing or reordering entries breaks the link to the one before,
and removing the newest entries shows against the head, which is written in the same transaction.
Appends run inside the caller's transaction, so a record and its entry are committed together.

Someone holding the file can still rewrite the chain consistently from any entry on. Two anchors
outside the file catch that: a head printed earlier (in a report or an export), which the log must
still extend (``verify(against=...)``), and, when a key is set, a seal per entry (HMAC-SHA256 of
its sequence number and hash under a key kept outside the data folder), which nobody without the
key can recompute."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects.sqlite import insert as upsert

from core.casework.records import AuditCheck, AuditEntry
from core.casework.tables import audit_head, audit_log, audit_seals

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


def seal(key: bytes, seq: int, entry_sha256: str) -> str:
    return hmac.new(key, f"{seq}:{entry_sha256}".encode(), hashlib.sha256).hexdigest()


def next_seq(connection: Connection) -> int:
    """The number the next entry will get (rows written with it store it before it is appended)."""
    return head(connection)[0] + 1


def append(
    connection: Connection,
    kind: str,
    operator: str,
    payload: dict,
    case_id: int | None = None,
    *,
    key: bytes | None,
) -> int:
    """Add one entry in the caller's (write-locked) transaction, sealed when ``key`` is given;
    returns its sequence number."""
    seq, prev = next_seq(connection), head(connection)[1]
    at = now_iso()
    payload_json = canonical_json(payload)
    content = content_hash(at, kind, operator, case_id, payload_json)
    entry = chain_hash(prev, content)
    connection.execute(
        insert(audit_log).values(
            seq=seq, at=at, kind=kind, operator=operator, case_id=case_id, payload_json=payload_json,
            content_sha256=content, prev_sha256=prev, entry_sha256=entry,
        )
    )  # fmt: skip
    new_head = upsert(audit_head).values(id=1, seq=seq, entry_sha256=entry)
    connection.execute(
        new_head.on_conflict_do_update(
            index_elements=[audit_head.c.id],
            set_={"seq": new_head.excluded.seq, "entry_sha256": new_head.excluded.entry_sha256},
        )
    )
    if key is not None:
        connection.execute(insert(audit_seals).values(seq=seq, mac=seal(key, seq, entry)))
    return seq


def _row_to_entry(row) -> AuditEntry:
    seq, at, kind, operator, case_id, payload_json, content, prev, entry = row
    try:
        payload = json.loads(payload_json)
    except (TypeError, ValueError):
        payload = {"unreadable": str(payload_json)}
    return AuditEntry(seq, at, kind, operator, case_id, payload, content, prev, entry)


_COLUMNS = ("seq", "at", "kind", "operator", "case_id", "payload_json", "content_sha256", "prev_sha256", "entry_sha256")
_ENTRIES = select(*(audit_log.c[name] for name in _COLUMNS)).order_by(audit_log.c.seq)


def entries(connection: Connection, kind: str | None = None) -> Iterator[AuditEntry]:
    for row in connection.execute(_ENTRIES if kind is None else _ENTRIES.where(audit_log.c.kind == kind)):
        yield _row_to_entry(row)


def entry(connection: Connection, seq: int) -> AuditEntry | None:
    row = connection.execute(_ENTRIES.where(audit_log.c.seq == seq)).first()
    return _row_to_entry(row) if row else None


def last_of_kind(connection: Connection, kind: str) -> AuditEntry | None:
    """The newest entry of ``kind``, or None."""
    seq = connection.execute(select(func.max(audit_log.c.seq)).where(audit_log.c.kind == kind)).scalar()
    return entry(connection, seq) if seq is not None else None


def head(connection: Connection) -> tuple[int, str]:
    row = connection.execute(select(audit_head.c.seq, audit_head.c.entry_sha256).where(audit_head.c.id == 1)).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def parse_head(text_: str) -> tuple[int | None, str]:
    """A head as reports and exports print it: 'SEQ:SHA256' or the bare sha256."""
    seq, _, digest = text_.strip().rpartition(":")
    digest = digest.lower()
    if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest) or (seq and not seq.isdigit()):
        raise ValueError(f"'{text_}' is not a head: give ENTRIES:SHA256 as a report or export prints it")
    return (int(seq) if seq else None), digest


def verify(
    connection: Connection, *, against: tuple[int | None, str] | None = None, key: bytes | None = None
) -> AuditCheck:
    """Walk the chain from the first entry; stop at the first one that was altered, removed or
    moved, and name it. ``against``: a head printed earlier that the log must still extend;
    ``key``: every entry must carry its seal under that key."""
    previous_hash, expected_seq, count = GENESIS, 1, 0
    hashes: dict[int, str] = {}

    def bad(seq: int, problem: str) -> AuditCheck:
        return AuditCheck(False, count, previous_hash, seq, problem)

    for seq, at, kind, operator, case_id, payload_json, content, prev, entry_hash in connection.execute(_ENTRIES):
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
        hashes[seq] = entry_hash
    head_rows = connection.execute(select(func.count()).select_from(audit_head)).scalar_one()
    if head_rows > 1:
        return bad(count, f"the log's head table holds {head_rows} rows, not one: rows were added behind the log")
    head_seq, head_hash = head(connection)
    if head_seq != count or head_hash != previous_hash:
        if head_seq > count:
            return bad(count + 1, f"entries {count + 1} to {head_seq} were removed (the log's head records {head_seq})")
        return bad(head_seq + 1 if head_seq < count else count, "the log's head does not match its newest entry")
    if against is not None:
        problem = _not_extending(hashes, *against)
        if problem:
            return AuditCheck(False, count, previous_hash, against[0] or 1, problem)
    if key is not None:
        seals = _seals(connection)
        stray = sorted(set(seals) - set(hashes))
        if stray:
            return AuditCheck(
                False, count, previous_hash, stray[0], f"a seal names entry {stray[0]}, which is not in the log"
            )
        for seq, entry_hash in hashes.items():
            if seq not in seals:
                return AuditCheck(
                    False, count, previous_hash, seq, f"entry {seq} carries no seal under the key: written without it"
                )
            if not hmac.compare_digest(seals[seq], seal(key, seq, entry_hash)):
                return AuditCheck(
                    False, count, previous_hash, seq,
                    f"entry {seq}'s seal does not match under the key: the log was rewritten from there on "
                    "(or the key is another)",
                )  # fmt: skip
    return AuditCheck(True, count, previous_hash)


def _seals(connection: Connection) -> dict[int, str]:
    return dict(connection.execute(select(audit_seals.c.seq, audit_seals.c.mac)).all())


def _not_extending(hashes: dict[int, str], seq: int | None, digest: str) -> str:
    """Why the chain does not extend the head ``digest`` (at ``seq``, when known); '' when it does."""
    if seq is not None and seq == 0 and digest == GENESIS:
        return ""
    if seq is not None:
        if seq not in hashes:
            return f"the log ends at entry {len(hashes)}, before the given head at entry {seq}: it was cut back"
        if hashes[seq] != digest:
            return f"entry {seq} is not the given head: the log was rewritten at or before entry {seq}"
        return ""
    if digest not in hashes.values():
        return "the given head is not in the log: it was rewritten or cut back since that head was printed"
    return ""


EXPORT_FORMAT = "sketchsearch-audit-export/1"


def export_document(connection: Connection, exported_at: str) -> dict:
    """The whole log as one JSON document that a third party can check with nothing but Python's
    standard library (tools/check_audit_export.py): each entry with its payload text exactly as it
    was hashed, its seal when it has one, and the head."""
    seals = _seals(connection)
    rows = connection.execute(_ENTRIES)
    entries = [dict(zip(_COLUMNS, row, strict=True)) | {"seal": seals.get(row[0])} for row in rows]
    seq, digest = head(connection)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at,
        "head": {"entries": seq, "sha256": digest},
        "genesis": GENESIS,
        "entries": entries,
    }
