#!/usr/bin/env python3
"""Check a SketchSearch audit export (`sketchsearch audit export FILE`) with Python's standard
library alone: no SketchSearch, no database, nothing to install.

    python3 check_audit_export.py EXPORT.json [--against ENTRIES:SHA256] [--key KEYFILE]

It recomputes every entry's content hash and chain hash from the genesis value on, checks that the
document's head is the newest entry, and optionally that the log still extends a head printed
earlier (in a case report or an earlier export) and that every entry carries a valid seal under
the audit key. Exit status: 0 intact, 1 damaged, 2 unreadable input.

The hashes, as SketchSearch writes them:
    content = sha256(canonical JSON of {"at", "kind", "operator", "case_id", "payload"}), where
              "payload" is the entry's payload text and canonical JSON has sorted keys, no spaces,
              and non-ASCII text as itself
    entry   = sha256(previous entry hash + content hash), hex strings; the first entry's previous
              hash is 64 zeros
    seal    = HMAC-SHA256(key, "SEQ:ENTRY_HASH"), the key being the key file's bytes, stripped
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys

FORMAT = "sketchsearch-audit-export/1"


def canonical_json(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check(document: dict, against: tuple[int | None, str] | None, key: bytes | None) -> list[str]:
    """The problems found; [] when the export is intact."""
    if document.get("format") != FORMAT:
        return [f"not a SketchSearch audit export (format {document.get('format')!r}, expected {FORMAT})"]
    previous, hashes = "0" * 64, {}
    for expected_seq, entry in enumerate(document["entries"], start=1):
        seq = entry["seq"]
        if seq != expected_seq:
            return [f"entry {expected_seq} is missing (next is {seq})"]
        content = sha256_hex(
            canonical_json(
                {
                    "at": entry["at"],
                    "kind": entry["kind"],
                    "operator": entry["operator"],
                    "case_id": entry["case_id"],
                    "payload": entry["payload_json"],
                }
            )
        )
        if content != entry["content_sha256"]:
            return [f"entry {seq} was altered: its content no longer matches its hash"]
        if entry["prev_sha256"] != previous:
            return [f"entry {seq} does not follow entry {seq - 1}"]
        if sha256_hex(previous + content) != entry["entry_sha256"]:
            return [f"entry {seq} was altered: its chain hash is wrong"]
        previous = hashes[seq] = entry["entry_sha256"]
    problems = []
    head = document["head"]
    if head["entries"] != len(hashes) or head["sha256"] != previous:
        problems.append(f"the head ({head['entries']}:{head['sha256']}) is not the newest entry")
    if against is not None:
        seq, digest = against
        if seq is None and digest not in hashes.values():
            problems.append("the given head is not in the log: it was rewritten or cut back since")
        elif seq is not None and hashes.get(seq) != digest:
            problems.append(f"entry {seq} is not the given head: the log was rewritten or cut back")
    if key is not None:
        for entry in document["entries"]:
            mac = hmac.new(key, f"{entry['seq']}:{entry['entry_sha256']}".encode(), hashlib.sha256).hexdigest()
            if entry.get("seal") is None:
                problems.append(f"entry {entry['seq']} carries no seal under the key")
                break
            if not hmac.compare_digest(entry["seal"], mac):
                problems.append(f"entry {entry['seq']}'s seal does not match under the key")
                break
    return problems


def parse_head(text: str) -> tuple[int | None, str]:
    seq, _, digest = text.strip().rpartition(":")
    if len(digest) != 64 or (seq and not seq.isdigit()):
        raise ValueError(f"'{text}' is not a head: give ENTRIES:SHA256")
    return (int(seq) if seq else None), digest.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a SketchSearch audit export.")
    parser.add_argument("export", help="the JSON file `sketchsearch audit export` wrote")
    parser.add_argument("--against", help="a head printed earlier, ENTRIES:SHA256, that the log must still extend")
    parser.add_argument("--key", help="the audit key file: every entry must carry its seal")
    args = parser.parse_args(argv)
    try:
        with open(args.export, encoding="utf-8") as handle:
            document = json.load(handle)
        against = parse_head(args.against) if args.against else None
        key = None
        if args.key:
            with open(args.key, "rb") as handle:
                key = handle.read().strip()
        problems = check(document, against, key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {args.export}: cannot check it ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"DAMAGED: {problem}")
        return 1
    head = document["head"]
    sealed = " every entry sealed under the key;" if key is not None else ""
    print(f"intact:{sealed} {head['entries']} entries, head {head['entries']}:{head['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
