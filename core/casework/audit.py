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
    if key is not None:
        connection.execute(
            text("INSERT INTO audit_seals (seq, mac) VALUES (:seq, :mac)"), dict(seq=seq, mac=seal(key, seq, entry))
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
        hashes[seq] = entry_hash
    head_rows = connection.execute(text("SELECT count(*) FROM audit_head")).scalar_one()
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
        seals = dict(connection.execute(text("SELECT seq, mac FROM audit_seals")).all())
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
    seals = dict(connection.execute(text("SELECT seq, mac FROM audit_seals")).all())
    rows = connection.execute(
        text(
            "SELECT seq, at, kind, operator, case_id, payload_json, content_sha256, prev_sha256, entry_sha256 "
            "FROM audit_log ORDER BY seq"
        )
    )
    names = (
        "seq",
        "at",
        "kind",
        "operator",
        "case_id",
        "payload_json",
        "content_sha256",
        "prev_sha256",
        "entry_sha256",
    )
    entries = [dict(zip(names, row, strict=True)) | {"seal": seals.get(row[0])} for row in rows]
    seq, digest = head(connection)
    return {
        "format": EXPORT_FORMAT,
        "exported_at": exported_at,
        "head": {"entries": seq, "sha256": digest},
        "genesis": GENESIS,
        "entries": entries,
    }
