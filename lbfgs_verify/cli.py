"""The ``lbfgs-verify`` command.

``lbfgs-verify check TARGET [--level properties|semantics|conformance] [--budget quick|ci|thorough]
[--lacks FEATURE,...] [--skips-file PATH] [--json PATH] [--only ID-or-prefix] [--threads N] [--list]`` runs
the property suite against ``TARGET`` (``module:attr``; default: the ``LBFGS_VERIFY_TARGET`` environment
variable) and prints a header, a table, the failures grouped by shared cause and the details. ``--mode`` is
another name of ``--level``.

Exit status: 0 when every property holds (skips allowed); 1 when any fails or errors; 2 when the target
cannot be loaded (or does not accept torch.optim.LBFGS's constructor arguments and have ``step``,
``state_dict``, ``load_state_dict``) or the arguments are wrong.

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

_MODES = ("properties", "semantics", "conformance")
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
    check.add_argument("--level", "--mode", dest="mode", choices=_MODES, default="properties",
                       help="properties (default): what every correct L-BFGS must satisfy, whatever its "
                            "evaluation schedule, first-step rule, returned loss, state format and rounding; "
                            "semantics: also torch.optim.LBFGS's documented behaviour; conformance: also bitwise "
                            "equal to torch.optim.LBFGS on the CPU")
    check.add_argument("--lacks", metavar="FEATURE[,FEATURE...]", action="append",
                       help="features the target does not support (repeatable, comma-separated): never drawn, "
                            "properties that need them skip; see --list-features")
    check.add_argument("--list-features", action="store_true", help="print the features --lacks accepts and exit")
    check.add_argument("--skips-file", metavar="PATH", type=Path,
                       help="property IDs or prefixes to skip, one a line as 'ID  # reason'")
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
    if args.command == "docs":
        return _docs(args)
    return _check(args)


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
        print(f"{prop.id:<{width}}  {prop.level:<11}  {prop.title}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from lbfgs_verify.capabilities import FEATURES, CapabilityError, SkipsFileError, parse_lacks, read_skips_file

    if args.list_features:
        for name, text in FEATURES.items():
            print(f"{name:<20}  {text}")
        return EXIT_OK
    if args.list:
        return _list(args.mode, args.only)
    try:
        lacks = parse_lacks(args.lacks)
    except CapabilityError as exc:
        print(f"lbfgs-verify: error: --lacks: {exc}", file=sys.stderr)
        return EXIT_USAGE
    skips: dict[str, str] = {}
    if args.skips_file is not None:
        from lbfgs_verify.properties.base import REGISTRY, load_all

        load_all()
        try:
            skips = read_skips_file(args.skips_file, REGISTRY)
        except SkipsFileError as exc:
            print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    from lbfgs_verify.properties.runner import (
        SelectionError,
        declared_lacks_of,
        header_lines,
        interface_problem,
        library_versions,
        print_report_details,
        print_shared_causes,
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
    try:
        sources = declared_lacks_of(target, ("--lacks", sorted(lacks)))
    except CapabilityError as exc:
        print(f"lbfgs-verify: error: target {spec!r}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = interface_problem(target, [f for fs in sources.values() for f in fs])
    if problem is not None:
        print(f"lbfgs-verify: error: target {spec!r} cannot be checked: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        selected = select_properties(args.mode, args.only)
    except SelectionError as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json is not None and args.json.parent and not args.json.parent.exists():
        print(f"lbfgs-verify: error: --json {args.json}: directory {args.json.parent} does not exist",
              file=sys.stderr)
        return EXIT_USAGE

    from lbfgs_verify.properties.base import BUDGETS

    budget = BUDGETS[args.budget]
    for line in header_lines(target.spec, target_version(target), args.mode, budget, args.threads,
                             library_versions(), sources, skips):
        print(line)
    width = max((len(p.id) for p in selected), default=10)
    print()
    print(table_header(width))

    def show(result: object) -> None:
        print(table_row(result, width), flush=True)  # type: ignore[arg-type]

    report = run_check(target, args.mode, budget, threads=args.threads, properties=selected, on_result=show,
                       lacks=sorted(lacks), skips=skips)
    print()
    print(summary_line(report))
    print_shared_causes(report)
    print_report_details(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nJSON report written to {args.json}")
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
