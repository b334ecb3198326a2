"""The command line's grammar: every command and option of ``sketchsearch``, and a parser that keeps
the error contract (one line, exit 2, the nearest command or option for a typo)."""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path

from core.casework.naming import printable
from core.casework.report_data import DEFAULT_TOP
from core.gallery.attribute_sheet import DEFAULT_ID_PATTERN, SHEET_KEYS

COMMANDS = (
    *("import", "search", "attributes", "verify", "rebuild-index", "stats", "prune"),
    *("case", "review", "audit", "import-embeddings", "operator"),
)
EXIT_ERROR = 2
OPERATOR_DEFAULT = "$SKETCHSEARCH_OPERATOR, else the data folder's operator ('sketchsearch operator'), else the OS user"
OPERATOR_HELP = f"who acts (default: {OPERATOR_DEFAULT})"


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one line on stderr, exit 2, and for a mistyped
    command, action or value the nearest one (difflib; argparse suggests only from Python 3.14)."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"error: {self.prog}: {printable(message)}\n")

    def _check_value(self, action: argparse.Action, value) -> None:  # argparse's hook for choices
        if action.choices is None or value in action.choices:
            return
        names = [str(choice) for choice in action.choices]
        nearest = difflib.get_close_matches(str(value), names, n=1)
        if isinstance(action, argparse._SubParsersAction):
            what = "a command" if action.dest == "command" else "an action"
            hint = f"did you mean '{nearest[0]}'?" if nearest else f"see '{self.prog} --help'"
            raise argparse.ArgumentError(None, f"'{value}' is not {what}; {hint}")
        name = "/".join(action.option_strings) or action.metavar or action.dest
        hint = f"; did you mean '{nearest[0]}'?" if nearest else ""
        raise argparse.ArgumentError(None, f"{name} '{value}' is not one of {', '.join(names)}{hint}")

    def parse_strictly(self, argv: list[str]) -> argparse.Namespace:
        """Parse, and refuse what no parser knew, naming the command it was given to and the option
        it was nearest to."""
        self._refuse_unknown_leading_options(argv)
        args, extras = self.parse_known_args(argv)
        if not extras:
            return args
        parser = self._command_parser(args)
        word = extras[0]
        if not word.startswith("-") or word == "-":
            parser.error(f"unexpected argument '{word}' (see '{parser.prog} --help')")
        option = word.split("=", 1)[0]
        if parser is not self and option in self._option_string_actions:
            parser.error(f"'{option}' is an option of {self.prog} itself: give it before the command")
        nearest = difflib.get_close_matches(option, list(parser._option_string_actions), n=1)
        hint = f"did you mean '{nearest[0]}'?" if nearest else f"see '{parser.prog} --help'"
        parser.error(f"'{option}' is not an option; {hint}")

    def _refuse_unknown_leading_options(self, argv: list[str]) -> None:
        """An unknown option before the command would leave its value to be taken for the command
        ("'DIR' is not a command"): name the option instead."""
        words = iter(argv)
        for word in words:
            if not word.startswith("-") or word in ("-", "--"):
                return  # the command: what follows is its own
            option = word.split("=", 1)[0]
            action = self._option_string_actions.get(option)
            if action is None and option.startswith("--"):  # argparse takes an unambiguous prefix
                longer = [a for name, a in self._option_string_actions.items() if name.startswith(option)]
                if len(longer) > 1:
                    return  # ambiguous: argparse names the options it could be
                action = longer[0] if longer else None
            elif action is None and self._option_string_actions.get(option[:2]) is not None:
                return  # short flags run together (-vv): argparse reads them
            if action is None:
                nearest = difflib.get_close_matches(option, list(self._option_string_actions), n=1)
                hint = f"did you mean '{nearest[0]}'?" if nearest else f"see '{self.prog} --help'"
                self.error(f"'{option}' is not an option; {hint}")
            if action.nargs != 0 and "=" not in word:
                next(words, None)  # its value

    def _command_parser(self, args: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub-)parser of the command and action that ``args`` were parsed for."""
        parser: argparse.ArgumentParser = self
        while True:
            commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = getattr(args, commands[0].dest, None) if commands else None
            if chosen is None:
                return parser
            parser = commands[0].choices[chosen]


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got '{text}'")
    return name.strip(), value.strip()


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="catalogue and index folder (default: the user data folder)")
    parser.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where the model runs (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    parser.add_argument(
        "--audit-key",
        type=Path,
        metavar="FILE",
        help="seal audit entries (and check their seals) with the key in FILE, kept outside the data folder "
        "(default: the file SKETCHSEARCH_AUDIT_KEY names; none: entries are not sealed)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sketchsearch", description="Search a photo gallery with a sketch.")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "import",
        help="import photos from files or folders (recursively), and the people seen in videos (mp4, mov, avi, mkv)",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument(
        "--fps",
        type=float,
        default=2.0,
        metavar="N",
        help="frames of each video looked at per second of it (default 2; a resumed video keeps its rate)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("search", help="rank the gallery against one or more sketches")
    p.add_argument("sketches", nargs="+", type=Path, metavar="SKETCH")
    p.add_argument("--top", type=int, default=10, metavar="K", help="candidates per sketch (default 10)")
    p.add_argument(
        "--where",
        type=_name_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keep only photos with this attribute value (repeat for several, all must hold)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="model-predicted attribute values count only at this confidence or above",
    )
    p.add_argument("--case", metavar="NUMBER", help="record the search in this case (default: under no case)")
    p.add_argument("--operator", help=OPERATOR_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("attributes", help="import or set photo attributes")
    attr = p.add_subparsers(dest="attributes_command", required=True, metavar="ACTION")
    q = attr.add_parser(
        "import", help="read a CSV: a key column ('path', 'filename' or, with --key id, 'id'), then one per attribute"
    )
    q.add_argument("csv", type=Path)
    q.add_argument(
        "--key",
        choices=SHEET_KEYS,
        help="what the rows name: a photo's path, its file name, or a person id (default: 'path' or "
        "'filename', whichever column the sheet has)",
    )
    q.add_argument(
        "--id-pattern",
        metavar="REGEX",
        help=f"with --key id: how a file name gives the person id (its first group; default '{DEFAULT_ID_PATTERN}')",
    )
    q.add_argument("--operator", help="who is stating these values (default: " + OPERATOR_DEFAULT + ")")
    q = attr.add_parser("set", help="set attributes of one photo by hand (wins over predictions)")
    q.add_argument("photo_id", type=int)
    q.add_argument("values", nargs="+", type=_name_value, metavar="NAME=VALUE")
    q.add_argument("--operator", help="who is stating these values (default: " + OPERATOR_DEFAULT + ")")

    p = sub.add_parser("verify", help="check that catalogue, embeddings and index agree (exit 0 only then)")
    p.add_argument(
        "--files",
        action="store_true",
        help="also check that every photo's file is still the one imported (a file whose size and modification "
        "time are unchanged is taken to be: use --rehash to read every byte)",
    )
    p.add_argument(
        "--rehash",
        action="store_true",
        help="check every photo's file by hashing it whole against the sha256 recorded at import, whatever its "
        "size and modification time (reads the whole gallery; implies --files)",
    )
    sub.add_parser("rebuild-index", help="embed photos that lack an embedding, then rebuild the index")
    p = sub.add_parser("stats", help="gallery size, index size, failures, model")
    p.add_argument("--json", action="store_true")
    sub.add_parser("prune", help="forget photos whose files are gone")
    _add_casework_commands(sub)
    p = sub.add_parser(
        "import-embeddings", help="ingest Parquet shards from 'sketchsearch-cluster embed' (no re-embedding)"
    )
    p.add_argument("shards", type=Path, metavar="SHARDS", help="the shard folder (or one .parquet file)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def _add_casework_commands(sub) -> None:
    operator = argparse.ArgumentParser(add_help=False)
    operator.add_argument("--operator", help=OPERATOR_HELP)
    p = sub.add_parser("case", help="cases: new, open, close, list, show, replay, report")
    case = p.add_subparsers(dest="case_command", required=True, metavar="ACTION")
    q = case.add_parser("new", parents=[operator], help="open a new case")
    q.add_argument("number")
    q.add_argument("--title", default="", help="a short title")
    q.add_argument("--notes", default="", help="free notes")
    q = case.add_parser("open", parents=[operator], help="open a closed case again")
    q.add_argument("number")
    q = case.add_parser("close", parents=[operator], help="close a case (its records are kept)")
    q.add_argument("number")
    q = case.add_parser("list", help="every case")
    q.add_argument("--json", action="store_true")
    q = case.add_parser("show", help="a case's searches, candidates and review marks")
    q.add_argument("number")
    q.add_argument("--json", action="store_true")
    q = case.add_parser("replay", help="run a recorded search again and say what changed")
    q.add_argument("search_id", type=int)
    q.add_argument("--json", action="store_true")
    q = case.add_parser("report", parents=[operator], help="write the case report")
    q.add_argument("number")
    q.add_argument("--pdf", type=Path, required=True, metavar="FILE")
    q.add_argument(
        "--top", type=int, default=DEFAULT_TOP, metavar="N",
        help=f"candidates listed per search besides every reviewed one (default {DEFAULT_TOP})",
    )  # fmt: skip

    p = sub.add_parser("operator", help="show who is recorded as acting, or store NAME as this data folder's operator")
    p.add_argument("name", nargs="?", metavar="NAME", help="the operator for the window and the command line")

    p = sub.add_parser("review", parents=[operator], help="mark a candidate of a recorded search")
    p.add_argument("search_id", type=int)
    p.add_argument("rank", type=int)
    p.add_argument("mark", choices=("possible", "excluded", "clear"))
    p.add_argument("--note", default="", help="why")

    p = sub.add_parser("audit", help="check or export the audit log")
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    q = audit.add_parser("verify", help="exit 0 only when the log and every record agree; else name each problem")
    q.add_argument(
        "--against",
        metavar="ENTRIES:SHA256",
        help="a head printed earlier (by a report or an export): fail unless the log still extends it",
    )
    q = audit.add_parser("export", help="write the log as one JSON document (tools/check_audit_export.py checks it)")
    q.add_argument("file", type=Path)
    q = audit.add_parser("new-key", help="write a new random audit key to FILE (keep it outside the data folder)")
    q.add_argument("file", type=Path)
