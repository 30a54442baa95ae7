"""The ``lbfgs-verify`` command.

``lbfgs-verify check TARGET [--mode properties|conformance] [--budget quick|ci|thorough] [--json PATH]
[--only ID-or-prefix] [--threads N] [--list]`` runs the property suite against ``TARGET`` (``module:attr``;
default: the ``LBFGS_VERIFY_TARGET`` environment variable) and prints a header and a table.

Exit status: 0 when every property holds (skips allowed); 1 when any fails or errors; 2 when the target
cannot be loaded (or does not accept torch.optim.LBFGS's constructor arguments and have ``step``,
``state_dict``, ``load_state_dict``) or the arguments are wrong (an unwritable ``--json`` path is refused before any
work); 141 when the reader of the output went away during a check run (``--list`` and ``docs`` end with 0).

``lbfgs-verify docs [--write PATH | --check PATH]`` prints, writes or checks ``docs/properties.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141

_MODES = ("properties", "conformance")
_BUDGETS = ("quick", "ci", "thorough")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive thread count")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbfgs-verify",
        description="Property and conformance checks for L-BFGS optimizers with torch.optim.LBFGS's interface.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser(
        "check", help="run the property suite against a target",
        description="Run the property suite against TARGET. Exit 0: all hold (skips allowed); 1: some property "
                    "failed or errored; 2: the target cannot be loaded (or lacks torch.optim.LBFGS's interface) or "
                    "the arguments are wrong.",
    )
    check.add_argument("target", nargs="?", metavar="TARGET",
                       help="module:attr of a class or factory with torch.optim.LBFGS's constructor "
                            "(default: $LBFGS_VERIFY_TARGET), e.g. torch.optim:LBFGS")
    check.add_argument("--mode", choices=_MODES, default="properties",
                       help="properties (default): mathematics and behaviour, any rounding and state format; "
                            "conformance: also bitwise equal to torch.optim.LBFGS on the CPU")
    check.add_argument("--budget", choices=_BUDGETS, default="ci",
                       help="how hard to look: quick (smoke, seconds), ci (default, minutes), thorough")
    check.add_argument("--json", metavar="PATH", type=Path, help="also write the report as JSON to PATH")
    check.add_argument("--only", metavar="ID", action="append",
                       help="run only properties whose ID equals or starts with ID (repeatable, comma-separated)")
    check.add_argument("--threads", type=_positive_int, default=1,
                       help="torch thread count for every run (bits depend on it; default 1)")
    check.add_argument("--list", action="store_true",
                       help="print the documented property IDs (of --mode, filtered by --only) and exit")

    docs = commands.add_parser("docs", help="print, write or check docs/properties.md (generated from the registry)")
    group = docs.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", type=Path, help="write the generated document to PATH")
    group.add_argument("--check", metavar="PATH", type=Path, help="exit 1 if PATH differs from the generated one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbfgs-verify`` console script and of ``python -m lbfgs_verify``."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help exits 0, a usage error exits 2
        return int(exc.code or 0)
    try:
        if args.command == "docs":
            return _docs(args)
        return _check(args)
    except BrokenPipeError:
        return _stdout_closed(args)


def _stdout_closed(args: argparse.Namespace) -> int:
    """The reader of our output went away (``lbfgs-verify check --list | head``): stop quietly, no traceback.

    Python's recipe (docs, "Note on SIGPIPE"): point stdout at devnull so the flush at exit cannot raise again.
    Listing and printing documentation end with 0 (the reader had what it wanted); an interrupted check run
    ends with 141 (128 + SIGPIPE, as a shell tool killed by the broken pipe), since its verdict is unknown.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    listing = args.command == "docs" or getattr(args, "list", False)
    return EXIT_OK if listing else EXIT_BROKEN_PIPE


def _docs(args: argparse.Namespace) -> int:
    from lbfgs_verify.properties.runner import properties_markdown

    text = properties_markdown()
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
        return EXIT_OK
    if args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            print(f"{args.check} is out of date: run `lbfgs-verify docs --write {args.check}`", file=sys.stderr)
            return EXIT_FAILED
        print(f"{args.check} is up to date")
        return EXIT_OK
    sys.stdout.write(text)
    return EXIT_OK


def _list(mode: str, only: Sequence[str] | None) -> int:
    from lbfgs_verify.properties.runner import SelectionError, select_properties

    try:
        selected = select_properties(mode, only)
    except SelectionError as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    width = max((len(p.id) for p in selected), default=10)
    for prop in selected:
        modes = ",".join(m for m in _MODES if m in prop.modes)
        print(f"{prop.id:<{width}}  {modes:<22}  {prop.title}")
    return EXIT_OK


def _json_path_problem(path: Path) -> str | None:
    """Why the report cannot be written to ``path`` (checked before any work), or ``None``."""
    parent = path.parent
    if not parent.exists():
        return f"directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if path.is_dir():
        return "it is a directory"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "it is not writable"
    return None


def _check(args: argparse.Namespace) -> int:
    if args.list:
        return _list(args.mode, args.only)
    if args.json is not None:
        problem = _json_path_problem(args.json)
        if problem is not None:  # before loading the target: nothing is run for a report that cannot be written
            print(f"lbfgs-verify: error: --json {args.json}: {problem}; nothing was run", file=sys.stderr)
            return EXIT_USAGE

    from lbfgs_verify.properties.runner import (
        SelectionError,
        header_lines,
        interface_problem,
        library_versions,
        print_report_details,
        run_check,
        select_properties,
        summary_line,
        table_header,
        table_row,
        target_version,
    )
    from lbfgs_verify.targets import TARGET_ENV_VAR, TargetLoadError, load_target

    spec = args.target or os.environ.get(TARGET_ENV_VAR)
    if not spec:
        print(f"lbfgs-verify: error: no target: pass TARGET as module:attr (e.g. torch.optim:LBFGS) or set "
              f"{TARGET_ENV_VAR}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = load_target(spec)
    except TargetLoadError as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = interface_problem(target)
    if problem is not None:
        print(f"lbfgs-verify: error: target {spec!r} cannot be checked: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        selected = select_properties(args.mode, args.only)
    except SelectionError as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from lbfgs_verify.properties.base import BUDGETS

    budget = BUDGETS[args.budget]
    for line in header_lines(target.spec, target_version(target), args.mode, budget, args.threads,
                             library_versions()):
        print(line)
    width = max((len(p.id) for p in selected), default=10)
    print()
    print(table_header(width))

    def show(result: object) -> None:
        print(table_row(result, width), flush=True)  # type: ignore[arg-type]

    report = run_check(target, args.mode, budget, threads=args.threads, properties=selected, on_result=show)
    print()
    print(summary_line(report))
    print_report_details(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nJSON report written to {args.json}")
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
