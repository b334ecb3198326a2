"""Headless command line: ``sketchsearch [--data-dir DIR] <command> ...``.

Scripts rely on this contract: JSON on stdout with ``--json``, one clear error line on stderr and
a non-zero exit for bad input, never a traceback."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import re
import sys
import threading

from core.casework.naming import mixed_scripts_warning, printable
from core.casework.weak import weak_result_warning
from core.cli.parser import EXIT_ERROR, build_parser
from core.common import environment
from core.common.errors import SketchSearchError
from core.common.operator import describe, operator_name, resolve_operator
from core.common.types import AttributeSource

EXIT_CLOSED_PIPE = 128 + 13  # what a shell reports for a program ended by SIGPIPE
# commands that add or forget photos or rewrite the index: a window that has the gallery open
# searches the index it loaded, and sees them only once it opens the gallery again
CHANGES_PHOTOS = ("import", "import-embeddings", "rebuild-index", "prune")


def _added_failed(progress) -> dict:
    return {"added": progress.added, "failed": progress.failed}


class _ProgressBar:
    """A tqdm bar on a terminal; silent when stderr is not one (scripts, CI). ``postfix``: the
    counts shown after the bar."""

    def __init__(self, description: str, postfix=_added_failed):
        self.bar = None
        self.postfix = postfix
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(desc=description, unit="file", dynamic_ncols=True)

    def __call__(self, progress) -> None:
        if self.bar is not None:
            self.bar.total = progress.total
            self.bar.n = progress.done
            self.bar.set_postfix(**self.postfix(progress), refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_json(data) -> None:
    sys.stdout.write(json_text(data) + "\n")


def json_text(data) -> str:
    """JSON that any path survives: a file name byte that is not UTF-8 (carried by Python as a lone
    surrogate, which UTF-8 output cannot hold) is written as its \\udcXX escape, which json.loads
    reads back to the same path."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _ESCAPED_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# lone surrogates, and the control characters json.dumps leaves as they are (DEL, the C1 set with
# its one-byte CSI, line separators, bidirectional overrides): escaped, they read back the same
_ESCAPED_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def shown(text: str) -> str:
    """A path or a stored text for a line of output: bytes that are not UTF-8 as \\xNN, and control
    characters (a newline in a file name, a terminal sequence in a case title) escaped, so that one
    result is always one line and nothing read back can steer the terminal."""
    return printable(str(text))


def _candidate_json(candidate) -> dict:
    found = {
        "rank": candidate.rank,
        "photo_id": candidate.photo_id,
        "path": candidate.path,
        "score": round(candidate.score, 6),
        # per value: predicted (with the model's confidence), imported or manual (with who and when)
        "attributes": {name: a.to_json() for name, a in sorted(candidate.attributes.items())},
        "file": candidate.file.value,  # ok | missing | changed since import
    }
    if candidate.video is not None:  # a crop cut from video: where it was seen
        found["video"] = candidate.video.to_json()
    return found


def run(args: argparse.Namespace) -> int:
    """Run one command; errors of the disk or the catalogue file become one line (exit 2)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.catalogue.catalogue import Catalogue, database_error
    from core.common.paths import default_data_dir

    try:
        return _run(args)
    except BrokenPipeError:
        raise  # the reader is gone: see main
    except SQLAlchemyError as exc:
        raise database_error((args.data_dir or default_data_dir()) / Catalogue.FILE_NAME, exc) from None
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args.data_dir or default_data_dir()
        if exc.errno == errno.ENOSPC:
            raise SketchSearchError(
                f"{where}: no space left on the disk; free some space and run the command again"
            ) from None
        raise SketchSearchError(f"{where}: {exc.strerror or exc}") from None


def _run(args: argparse.Namespace) -> int:
    from core.workspace import Workspace

    if args.command == "search":
        for sketch in args.sketches:  # fail fast, before the model loads
            if not sketch.is_file():
                raise SketchSearchError(f"{sketch}: sketch file not found")
    if args.command == "audit" and args.audit_command == "new-key":  # needs no gallery
        from core.casework.audit_key import write_new_key
        from core.common.paths import default_data_dir

        path = write_new_key(args.file, args.data_dir or default_data_dir())
        print(f"audit key written to {path} (0600); keep it outside the data folder and give it with --audit-key")
        return 0
    # only an import makes a new data folder: a mistyped --data-dir is an error, not an empty gallery;
    # verify opens a catalogue whose attribute change log is damaged (every other command refuses it)
    # to name each damaged part
    workspace = Workspace(
        args.data_dir,
        args.model,
        args.device,
        create=args.command in ("import", "import-embeddings"),
        audit_key_file=args.audit_key,
        check_change_log=args.command != "verify",
    )
    if getattr(args, "operator", None):
        workspace.desk.operator = operator_name(args.operator, "--operator")
    if args.command in CHANGES_PHOTOS:
        warning = workspace.writer.window_warning()
        if warning:
            print(f"warning: {shown(warning)}", file=sys.stderr)
    try:
        return COMMAND_HANDLERS[args.command](workspace, args)
    finally:
        workspace.close()


def _import(workspace, args) -> int:
    from core.common.types import ImportSummary

    videos = [p for p in args.paths if workspace.videos.is_video(p)]
    files = [p for p in args.paths if not workspace.videos.is_video(p)]
    cancel = threading.Event()
    # videos first: every one is checked before anything is imported, so a bad one changes nothing
    imported_videos = _import_videos(workspace, videos, args.fps, cancel) if videos else []
    summary = ImportSummary()
    if files:
        bar = _ProgressBar("importing")
        try:
            summary = workspace.import_paths(files, progress=bar, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
        finally:
            bar.close()
    if args.json:
        data = summary.to_json()
        if videos:  # crops are photos added to the gallery; "videos" says where each came from
            data["added"] += sum(v.added for v in imported_videos)
            data["videos"] = [v.to_json() for v in imported_videos]
        _print_json(data)
        return _video_problems(imported_videos)
    for video in imported_videos:
        print(_video_line(video))
    if files:
        print(
            f"added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
            f"duplicates {len(summary.duplicates)}, failed {len(summary.failed)} in {summary.seconds:.1f} s"
        )
        for duplicate in summary.duplicates:
            print(f"  duplicate: {shown(duplicate.path)} (same content as {shown(duplicate.of)})")
        for failure in summary.failed:
            print(f"  failed: {shown(failure.path)}: {shown(failure.reason)}")
    return _video_problems(imported_videos)


def _import_videos(workspace, videos, fps: float, cancel: threading.Event) -> list:
    bar = _VideoBar()
    try:
        return workspace.videos.import_videos(videos, fps, progress=bar, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()


class _VideoBar:
    """Frames sampled of about how many, the people kept and the time left, on a terminal."""

    def __init__(self):
        self.bar = None
        self.path = None
        self.enabled = sys.stderr.isatty()

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if progress.path != self.path:
            self.close()
            self.path = progress.path
            self.bar = tqdm(desc=os.path.basename(progress.path), unit="frame", dynamic_ncols=True)
        if progress.stage == "checking":
            self.bar.set_postfix_str("checking the file (sha256)")
            return
        self.bar.total = progress.frames_total or None
        self.bar.n = progress.frames_done
        left = "?" if progress.seconds_left is None else _clock(progress.seconds_left)
        self.bar.set_postfix_str(f"people {progress.people}, {progress.rate:.1f} frames/s, {left} left", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _video_line(video) -> str:
    if video.status == "unchanged":
        return f"video {shown(video.path)}: imported before, unchanged"
    line = (
        f"video {shown(video.path)}: {video.status}, {video.frames_sampled} frame(s) sampled, "
        f"{video.detections} detection(s), {video.added} person crop(s) added in {video.seconds:.1f} s"
    )
    if video.status == "cancelled":
        line += " (import it again to resume)"
    return line


def _video_problems(videos) -> int:
    """A video that ended early keeps what was read; the run still ends with its one-line error."""
    stopped = [v for v in videos if v.status == "stopped"]
    for video in stopped:
        print(f"error: {shown(video.path)}: {shown(video.problem)}", file=sys.stderr)
    return EXIT_ERROR if stopped else 0


def _attribute_text(value) -> str:
    """``~value(73%)`` marks a model's prediction; stated values (imported, manual) print as they are."""
    if value.source == AttributeSource.MODEL:
        return f"~{value.value}({value.confidence:.0%})"
    return value.value


def _search(workspace, args) -> int:
    from core.search import MAX_TOP_K, check_min_confidence, validate_filters

    if args.top < 1:
        raise SketchSearchError("--top must be at least 1")
    if args.top > MAX_TOP_K:
        print(f"warning: --top {args.top}: at most {MAX_TOP_K} candidates per sketch are kept", file=sys.stderr)
        args.top = MAX_TOP_K
    where = _one_value_per_attribute(args.where)
    check_min_confidence(args.min_confidence)
    validate_filters(workspace.schema, where)  # bad input is an error before any warning
    empty = workspace.stats().nothing_to_search()
    if empty:  # exit 0 (the search ran), but never an unexplained empty result
        print(f"warning: {workspace.data_dir}: {empty}", file=sys.stderr)
    case = workspace.casework.case(args.case) if args.case else None
    recorded = [
        workspace.searcher.search_file_recorded(sketch, args.top, where, args.min_confidence, case and case.id)
        for sketch in args.sketches
    ]
    # the warnings on each query as recorded with its search (a photo, a gallery photo)
    store = workspace.casework
    query_warnings = {search_id: store.search(search_id).latest.query_warnings for _, search_id in recorded}
    if args.json:
        _print_json(
            [
                {
                    "query": r.query,
                    "search_id": search_id,
                    "query_warnings": query_warnings[search_id],
                    "candidates": [_candidate_json(c) for c in r.candidates],
                }
                for r, search_id in recorded
            ]
        )
        return 0
    for result, search_id in recorded:
        where = f" in case {shown(case.number)})" if case else ")"
        print(f"{shown(result.query)}  (recorded as search {search_id}{where}")
        for warning in query_warnings[search_id]:
            print(f"  warning: {shown(warning)}")
        warning = weak_result_warning([c.score for c in result.candidates])
        if warning:
            print(f"  {warning}")
        for c in result.candidates:
            attributes = " ".join(f"{k}={_attribute_text(a)}" for k, a in sorted(c.attributes.items()))
            flag = f"  [{c.file.warning}]" if c.file.warning else ""
            print(
                f"  rank {c.rank:3d}  score {c.score:+.4f}  photo id {c.photo_id}  {shown(c.path)}  {attributes}{flag}"
            )
            if c.video is not None:
                print(f"           seen in {shown(c.video.describe())}")
    return 0


def _one_value_per_attribute(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Filters are ANDed, so two values of one attribute would match nothing; keeping the last
    silently would search for something else than asked."""
    where: dict[str, str] = {}
    for name, value in pairs:
        if name in where and where[name] != value:
            raise SketchSearchError(
                f"--where {name} given twice ({name}={where[name]}, {name}={value}): give one value per attribute"
            )
        where[name] = value
    return where


def _attributes(workspace, args) -> int:
    if args.attributes_command == "import":
        sheet = workspace.gallery.import_attribute_sheet(args.csv, args.key, args.id_pattern, args.operator)
        print(f"set {len(sheet.rows)} attribute value(s); {len(sheet.unmatched)} row(s) matched no photo")
        for name in sheet.ambiguous:
            print(f"  not applied: '{shown(name)}' matches photos in several folders (use a 'path' column)")
        return 0
    operator = workspace.desk.operator
    workspace.gallery.set_attributes_by_hand(args.photo_id, dict(args.values), operator=operator)  # all or none
    print(f"photo {args.photo_id}: " + ", ".join(f"{n}={v}" for n, v in args.values) + f" (set by {operator})")
    return 0


def _verify(workspace, args) -> int:
    bar = _ProgressBar("hashing", postfix=lambda p: {"changed": p.changed}) if args.rehash else None
    try:
        report = workspace.verify(files=args.files, rehash=args.rehash, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if report.ok:
        print("ok: catalogue, embeddings and index agree")
        return 0
    for problem in report.problems:
        print(f"problem: {shown(problem)}")
    return 1


def _rebuild_index(workspace, args) -> int:
    summary = workspace.gallery.embed_missing()
    index = workspace.gallery.rebuild_index()
    print(f"index rebuilt: {len(index)} photo(s), {summary.updated} newly embedded")
    for failure in summary.failed + workspace.gallery.repair_failures:
        print(f"  not embedded: {shown(failure.path)}: {shown(failure.reason)}")
    return 0


def _stats(workspace, args) -> int:
    stats = workspace.stats()
    if args.json:
        _print_json(stats.to_json())
    else:
        print(f"photos {stats.photos}, indexed {stats.indexed}, failed {stats.failed}, missing {stats.missing}")
        where = (
            f"{stats.model.device} on {stats.model.runtime}"
            if stats.model.loaded
            else f"{stats.model.device} (not loaded: not needed here)"
        )
        print(f"model {stats.model.name} ({stats.model.sha256[:12]}), device {where}")
    return 0


def _prune(workspace, args) -> int:
    print(f"pruned {workspace.gallery.prune_missing()} photo(s) whose files are gone")
    return 0


def _case(workspace, args) -> int:
    store, action = workspace.casework, args.case_command
    if action == "new":
        case = store.new_case(args.number, args.title, workspace.desk.operator, args.notes)
        print(f"case {shown(case.number)} opened by {shown(case.operator)}")
        warning = mixed_scripts_warning(case.number)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    elif action in ("open", "close"):
        number = store.case(args.number).number  # as stored: the number the record names
        case = store.set_case_state(number, closed=action == "close", operator=workspace.desk.operator)
        print(f"case {shown(case.number)} {'closed' if action == 'close' else 'open again'}")
    elif action == "list":
        cases = store.cases()
        if args.json:
            _print_json([_case_json(c) for c in cases])
        for c in [] if args.json else cases:
            state = "open" if c.is_open else f"closed {c.closed_at:%Y-%m-%d}"
            print(f"{shown(c.number)}  {shown(c.title)}  ({shown(c.operator)}, {c.searches} search(es), {state})")
    elif action == "show":
        _show_case(workspace, args)
    elif action == "replay":
        report = workspace.searcher.replay(args.search_id)
        if args.json:
            _print_json(
                {
                    "search_id": report.search_id,
                    "revision": report.revision,
                    "identical": report.identical,
                    "differences": report.differences,
                }
            )
        else:
            verdict = "identical ranking" if report.identical else "the ranking changed"
            print(f"search {report.search_id} revision {report.revision}: {verdict}")
            for line in report.differences:
                print(f"  {line}")
        return 0 if report.identical else 1
    elif action == "report":
        number = store.case(args.number).number
        path = workspace.desk.export_case_report(number, args.pdf, args.top)
        print(f"report of case {shown(number)} written to {shown(path)}")
    return 0


def _case_json(case) -> dict:
    return {
        "number": case.number,
        "title": case.title,
        "operator": case.operator,
        "notes": case.notes,
        "opened_at": case.opened_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else None,
        "searches": case.searches,
    }


def _show_case(workspace, args) -> None:
    store = workspace.casework
    case = store.case(args.number)
    searches = store.searches_of_case(case.id)
    shown = []
    for search in searches:
        marks = store.current_marks(search.id)
        latest = search.latest
        shown.append(
            {
                "search_id": search.id,
                "revision": latest.revision,
                "query": search.query_name,
                "query_sha256": search.query_sha256,
                "operator": search.operator,
                "started_at": latest.started_at.isoformat(),
                "model": latest.model_name,
                "filters": latest.filters,
                "gallery_photos": latest.gallery.photos,
                "query_warnings": latest.query_warnings,
                "origin": search.origin,
                "weak_result": weak_result_warning([c.score for c in latest.candidates]),
                "candidates": [
                    {
                        "rank": c.rank,
                        "photo_id": c.photo_id,
                        "photo_sha256": c.photo_sha256,
                        "score": round(c.score, 6),
                        "mark": marks[c.photo_id].mark.value if c.photo_id in marks else None,
                        "note": marks[c.photo_id].note if c.photo_id in marks else "",
                    }
                    for c in latest.candidates
                ],
            }
        )
    if args.json:
        _print_json({**_case_json(case), "searches": shown})
        return
    state = "open" if case.is_open else f"closed {case.closed_at:%Y-%m-%d %H:%M}"
    print(f"case {printable(case.number)}: {printable(case.title)} ({printable(case.operator)}, {state})")
    if case.notes:
        print(f"  notes: {printable(case.notes)}")
    for s in shown:
        print(
            f"search {s['search_id']} rev {s['revision']}  {s['started_at']}  {printable(s['operator'])}  "
            f"{printable(s['query'])}"
        )
        if s["origin"]:
            print(f"  origin: {printable(s['origin'])}")
        for warning in s["query_warnings"]:
            print(f"  warning: {printable(warning)}")
        if s["weak_result"]:
            print(f"  {s['weak_result']}")
        for c in s["candidates"]:
            mark = f"  {c['mark']}" + (f": {printable(c['note'])}" if c["note"] else "") if c["mark"] else ""
            print(f"  {c['rank']:3d}  {c['score']:+.4f}  #{c['photo_id']}  {c['photo_sha256'][:12]}{mark}")


def _review(workspace, args) -> int:
    from core.casework.records import ReviewMark

    review = workspace.desk.review(args.search_id, args.rank, ReviewMark(args.mark), args.note)
    print(f"search {review.search_id} rank {review.rank} (photo #{review.photo_id}): {review.mark.label}")
    return 0


def _audit(workspace, args) -> int:
    from core.casework.audit import parse_head

    if args.audit_command == "verify":
        try:
            against = parse_head(args.against) if args.against else None
        except ValueError as exc:
            raise SketchSearchError(str(exc)) from None
        check = workspace.casework.verify_audit(against=against)
        sealed = ", every entry sealed under the key" if workspace.casework.audit_key is not None else ""
        extends = f", extends {args.against}" if against else ""
        if check.ok:
            print(f"ok: {check.entries} entries{sealed}{extends}; head {check.entries}:{check.head_sha256}")
            return 0
        print(f"audit log damaged ({len(check.problems) or 1} problem(s)); head {check.entries}:{check.head_sha256}")
        for problem in check.problems or (check.problem,):
            print(f"  {printable(problem)}")
        return 1
    path, check = workspace.desk.export_audit_log(args.file)
    state = "verified" if check.ok else f"NOT VERIFIED: {printable(check.problem)}"
    print(f"audit log written to {path}: {check.entries} entries, head {check.entries}:{check.head_sha256} ({state})")
    return 0


def _import_embeddings(workspace, args) -> int:
    bar = _ProgressBar("ingesting")
    try:
        summary = workspace.gallery.import_embeddings(args.shards, progress=bar)
    finally:
        bar.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        print(
            f"added {summary.added}, unchanged {summary.unchanged}, failed {len(summary.failed)} "
            f"in {summary.seconds:.1f} s (embeddings from {args.shards})"
        )
        for failure in summary.failed:
            print(f"  failed: {shown(failure.path)}: {shown(failure.reason)}")
    return 0


def _operator(workspace, args) -> int:
    if args.name:
        workspace.desk.set_operator(args.name, remember=True)
        print(f"operator of {shown(workspace.data_dir)} set to {shown(workspace.desk.operator)}")
        return 0
    who = resolve_operator(workspace.data_dir)
    print(f"operator: {shown(describe(who.name, who.os_account))}, from {who.source}")
    return 0


COMMAND_HANDLERS = {
    "import": _import,
    "search": _search,
    "attributes": _attributes,
    "verify": _verify,
    "rebuild-index": _rebuild_index,
    "stats": _stats,
    "prune": _prune,
    "case": _case,
    "review": _review,
    "audit": _audit,
    "import-embeddings": _import_embeddings,
    "operator": _operator,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_strictly(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        environment.check()  # a bad setting is said before any work, whatever the command
        code = run(args)
        sys.stdout.flush()  # a reader that is gone shows here, not as a message at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except SketchSearchError as exc:
        print(f"error: {shown(str(exc))}", file=sys.stderr)  # one line, whatever the message holds
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _reader_gone() -> int:
    """Output piped to a program that stopped reading (``| head``): end quietly, as Python advises
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe): what is still buffered goes
    to /dev/null, so that the flush at exit raises nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a descriptor (captured): nothing left to flush there
        pass
    return EXIT_CLOSED_PIPE


if __name__ == "__main__":
    sys.exit(main())
