"""The ``lbfgs-verify`` command.

``lbfgs-verify check TARGET [--level properties|semantics|conformance] [--budget quick|ci|thorough]
[--lacks FEATURE,...] [--skips-file PATH] [--json PATH] [--repro DIR] [--no-baseline] [--only ID-or-prefix]
[--threads N] [--list]`` runs the property suite against ``TARGET`` (``module:attr``; default: the
``LBFGS_VERIFY_TARGET`` environment variable) and prints a header, a table, the failures torch.optim.LBFGS
shares, the failures grouped by shared cause and the details; ``--repro`` writes standalone scripts of them.
``--mode`` is another name of ``--level``.

Exit status: 0 when every property holds (skips allowed); 1 when any fails or errors; 2 when the target
cannot be loaded (or does not accept torch.optim.LBFGS's constructor arguments and have ``step``,
``state_dict``, ``load_state_dict``) or the arguments are wrong (an unwritable ``--json`` path is refused before any
work); 141 when the reader of the output went away during a check run (``--list`` and ``docs`` end with 0).

``lbfgs-verify fuzz TARGET ...`` fuzzes state_dict round trips (see :mod:`lbfgs_verify.fuzz.cli`).

``lbfgs-verify docs [--write PATH | --check PATH]`` prints, writes or checks ``docs/properties.md``.

``lbfgs-verify record --output DIR|FILE [--target TARGET] [--only TEXT] [--kernel-sets NAMES]`` records golden
traces under every kernel set this CPU can force (it never writes the shipped records unless --output names them)
and ``lbfgs-verify drift [--records DIR|FILE] [--target TARGET] [--only TEXT] [--json PATH]`` compares the installed
libraries (or a target) with them (:mod:`lbfgs_verify.compare.golden_traces`). drift exits 0 when every run is bitwise
identical to the record of this CPU's kernel set, or within the tolerance measured from the recorded kernel sets
(unrecorded kernel set, other versions or BLAS), 1 otherwise or when a file holds fewer runs than its selection
covers, 2 on bad arguments or unreadable records.

``lbfgs-verify report [--out DIR [--force]] [--target TARGET ...] [--problems SET] [--sections S1,S2]
[--budget quick|ci|thorough] [--seed S]`` writes a comparison report (``index.md``, ``index.html``,
``report.json``, ``plots/``; see :mod:`lbfgs_verify.report`) into a new folder by default, never into a
non-empty folder that no report wrote unless ``--force``. Exit 0 when written (solvers that fail are shown as
failed), 2 on wrong arguments.
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

_MODES = ("properties", "semantics", "conformance")
_BUDGETS = ("quick", "ci", "thorough")


def _jobs(text: str) -> int | str:
    """``--jobs N`` or ``auto`` (resolved where the target is known: :func:`_resolve_jobs`)."""
    return "auto" if text.strip() == "auto" else _positive_int(text)


def _resolve_jobs(jobs: int | str, target: object | None = None, budget: str = "ci") -> int:
    """``auto``: :func:`lbfgs_verify.properties.runner.auto_jobs`; 1 at budget quick (a run of seconds: a worker
    takes about 3 s to start) and where ``target`` cannot be loaded by its spec in a worker process (an explicit
    N is checked by the runner, which names the problem)."""
    from lbfgs_verify.properties.runner import auto_jobs, loadable_by_spec

    if jobs != "auto":
        return int(jobs)
    count = auto_jobs()
    if count == 1 or budget == "quick":
        return 1
    return count if target is None or loadable_by_spec(target) else 1  # type: ignore[arg-type]


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
    check.add_argument("--repro", metavar="DIR", type=Path,
                       help="write a standalone script (torch and the target only) for each cause of each failure")
    check.add_argument("--no-baseline", action="store_true",
                       help="do not run torch.optim.LBFGS on the failed properties to mark the failures it shares")
    check.add_argument("--only", metavar="ID", action="append",
                       help="run only properties whose ID equals or starts with ID (repeatable, comma-separated)")
    check.add_argument("--threads", type=_positive_int, default=1,
                       help="torch thread count for every run (bits depend on it; default 1)")
    check.add_argument("--jobs", type=_jobs, default="auto",
                       help="run the properties in N processes (same verdicts as one); default auto: "
                            "$LBFGS_VERIFY_JOBS, else the CPUs available up to 4; 1 at --budget quick and for a "
                            "target a worker process cannot import by its spec")
    check.add_argument("--list", action="store_true",
                       help="print the documented property IDs (of --mode, filtered by --only) and exit")

    report = commands.add_parser(
        "report", help="write a comparison report (Markdown, HTML, JSON, PNG plots)",
        description="Compare the reference, torch.optim.LBFGS (without and with strong_wolfe), scipy L-BFGS-B, "
                    "minimize_lbfgsb and every --target: convergence, performance profiles, agreement, property "
                    "verdicts, fuzzing, resume, benchmarks. Writes DIR/index.md, DIR/index.html, DIR/report.json "
                    "and DIR/plots/.",
    )
    report.add_argument("--out", metavar="DIR", type=Path, default=None,
                        help="output folder (default: a new lbfgs-verify-report-DATE-TIME folder here). A non-empty "
                             "folder is refused unless an earlier report wrote it (then its report is replaced) "
                             "or --force is given")
    report.add_argument("--force", action="store_true",
                        help="write into --out even when it is a non-empty folder no report wrote")
    report.add_argument("--target", metavar="TARGET", action="append", default=[],
                        help="module:attr of another optimizer with torch.optim.LBFGS's constructor (repeatable)")
    report.add_argument("--problems", metavar="SET", default="suite",
                        help="suite (default: the 35 MGH problems and the other suite problems), mgh, extra, "
                             "mgh-scaled (35 MGH from x0, 10·x0, 100·x0), or comma-separated problems: full names, "
                             "short names (rosenbrock, mgh05) or globs ('*rosenbrock*')")
    report.add_argument("--sections", metavar="S1,S2",
                        help="sections to run (default all: convergence, agreement, properties, fuzz, resume, "
                             "benchmarks; 'none' for the header only); e.g. --sections convergence takes seconds "
                             "on one problem")
    report.add_argument("--budget", choices=_BUDGETS, default="quick",
                        help="quick (default, minutes: the report runs every section for every solver, where "
                             "check's default ci runs one target), ci, thorough")
    report.add_argument("--seed", type=int, default=0, help="global RNG seed of every run and of the fuzzer")
    report.add_argument("--threads", type=_positive_int, default=1, help="torch and BLAS threads (default 1)")
    report.add_argument("--jobs", type=_jobs, default="auto",
                        help="with 2 or more, the verdict sections (properties, fuzz, resume) run in a worker "
                             "process beside the timed ones (same numbers as one process); default auto: "
                             "$LBFGS_VERIFY_JOBS, else the CPUs available up to 4")
    report.add_argument("--lacks", metavar="FEATURES",
                        help="comma-separated features the targets lack (lbfgs_verify.engine.capabilities.FEATURES)")
    report.add_argument("--benchmark-json", metavar="PATH", type=Path,
                        help="read this pytest-benchmark JSON instead of running benchmarks/test_step_speed.py")
    report.add_argument("--no-benchmarks", action="store_true",
                        help="leave the benchmark section out (as --sections without benchmarks)")
    report.add_argument("--no-progress", action="store_true", help="no progress bar")
    report.add_argument("--solvers", metavar="IDS",
                        help="comma-separated default solvers and built-in adapters to run (ids as in the report's "
                             "Solvers table, e.g. torch,scipy,optax:lbfgs; none: only --target); default: all five "
                             "defaults and every installed built-in (JAX steppers compile once per problem)")

    from lbfgs_verify.fuzz.cli import add_parser as add_fuzz_parser

    add_fuzz_parser(commands)

    docs = commands.add_parser("docs", help="print, write or check docs/properties.md (generated from the registry)")
    group = docs.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", type=Path, help="write the generated document to PATH")
    group.add_argument("--check", metavar="PATH", type=Path, help="exit 1 if PATH differs from the generated one")
    _add_golden_trace_commands(commands)
    return parser


def _add_golden_trace_commands(commands: argparse._SubParsersAction) -> None:
    record = commands.add_parser(
        "record", help="record golden traces (torch.optim.LBFGS and scipy L-BFGS-B, or --target)",
        description="Record golden traces under every kernel set this CPU can force (one subprocess each; kernel "
                    "sets of other machines already in the output files are kept). Without --target: "
                    "torch.optim.LBFGS and scipy's L-BFGS-B on the MGH problems and SPD quadratics into --output DIR. "
                    "With --target: that optimizer, torch protocol, into --output FILE. --output is required: "
                    "record never overwrites the shipped records by default.",
    )
    record.add_argument("--output", metavar="DIR|FILE", type=Path,
                        help="required: folder for the library records, or the file for a --target record")
    record.add_argument("--target", metavar="TARGET", help="module:attr of your optimizer (torch.optim.LBFGS's "
                                                           "constructor); its record goes to --output FILE")
    record.add_argument("--only", metavar="TEXT", help="record only the runs whose id contains TEXT")
    record.add_argument("--threads", type=_positive_int, default=1, help="torch thread count (default 1)")
    record.add_argument("--kernel-sets", metavar="NAMES", help="comma-separated kernel sets to force (default: all of "
                        "native, avx2, avx2+openblas_zen, default, default+openblas_sandybridge)")

    drift = commands.add_parser(
        "drift", help="compare the installed libraries (or --target) with golden traces",
        description="Re-run every recorded trace and compare: bitwise when versions, BLAS and threads are the "
                    "recorded ones and this CPU's kernel set is recorded, otherwise within the tolerance measured from "
                    "the recorded kernel sets. Exit 0: identical or within tolerance; 1: changed, or a file holds "
                    "fewer runs than its selection covers; 2: bad arguments or unreadable records.",
    )
    drift.add_argument("--records", metavar="DIR|FILE", type=Path,
                       help="a record file or a folder of them (default: the shipped reference/traces)")
    drift.add_argument("--target", metavar="TARGET",
                       help="module:attr to run instead of the recorded optimizer (torch-protocol records)")
    drift.add_argument("--only", metavar="TEXT", help="compare only the runs whose id contains TEXT")
    drift.add_argument("--json", metavar="PATH", type=Path, help="also write the comparison as JSON to PATH")


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
        if args.command == "report":
            return _report(args)
        if args.command == "fuzz":
            from lbfgs_verify.fuzz.cli import run as run_fuzz_command

            return run_fuzz_command(args)
        if args.command == "record":
            return _record(args)
        if args.command == "drift":
            return _drift(args)
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


def _report(args: argparse.Namespace) -> int:
    import time

    from lbfgs_verify.engine.capabilities import CapabilityError, parse_lacks
    from lbfgs_verify.report.options import ProblemSetError, problem_set, section_set, solver_set
    from lbfgs_verify.report.write import fresh_directory, output_problem

    try:
        problems = problem_set(args.problems)
        lacks = parse_lacks(args.lacks)
        sections = section_set(args.sections, no_benchmarks=args.no_benchmarks)
        solvers = solver_set(args.solvers)
        jobs = _resolve_jobs(args.jobs)
    except (ProblemSetError, CapabilityError, ValueError) as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.out is None:
        args.out = fresh_directory(Path.cwd(), time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    refused = output_problem(args.out, force=args.force)
    if refused is not None:
        print(f"lbfgs-verify: error: {refused}", file=sys.stderr)
        return EXIT_USAGE
    if args.benchmark_json is not None and not args.benchmark_json.is_file():
        print(f"lbfgs-verify: error: --benchmark-json {args.benchmark_json}: no such file", file=sys.stderr)
        return EXIT_USAGE
    from lbfgs_verify.engine.capabilities import declared_lacks
    from lbfgs_verify.properties.runner import interface_problem
    from lbfgs_verify.targets.load import TargetLoadError, load_target

    for spec in args.target:
        try:
            target = load_target(spec)
            problem = interface_problem(target, lacks | declared_lacks(getattr(target, "factory", None)))
        except (TargetLoadError, CapabilityError) as exc:
            print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if problem is not None:
            print(f"lbfgs-verify: error: target {spec!r} cannot be compared: {problem}", file=sys.stderr)
            return EXIT_USAGE

    from lbfgs_verify.report import REPORT_BUDGETS, ReportOptions, write_report
    from lbfgs_verify.report.benchmarks import STEP_SPEED

    options = ReportOptions(
        out=args.out, budget=REPORT_BUDGETS[args.budget], targets=tuple(args.target), problems=problems,
        problem_set=args.problems, seed=args.seed, threads=args.threads, lacks=lacks,
        benchmark_json=args.benchmark_json, benchmark_dir=STEP_SPEED if "benchmarks" in sections else None,
        progress=not args.no_progress, sections=sections, default_solvers=solvers, jobs=jobs,
    )
    report = write_report(options)
    print(f"report written to {args.out}/index.md, {args.out}/index.html and {args.out}/report.json "
          f"({report['seconds']:.0f} s)")
    return EXIT_OK


def _record(args: argparse.Namespace) -> int:
    from lbfgs_verify.compare.golden_traces import GoldenTraceError, record_suite, record_target
    from lbfgs_verify.targets.load import TargetLoadError

    def progress(run_id: str) -> None:
        print(f"  recording {run_id}", file=sys.stderr, flush=True)

    if args.output is None:
        print("lbfgs-verify: error: record needs --output " + ("FILE (a .json file to write)" if args.target else
              "DIR (a folder for torch_lbfgs.json and scipy_lbfgsb.json; record never overwrites the shipped "
              "records by default)"), file=sys.stderr)
        return EXIT_USAGE
    kernel_sets = [k.strip() for k in args.kernel_sets.split(",") if k.strip()] if args.kernel_sets else None
    try:
        if args.target:
            if args.output.is_dir():
                print("lbfgs-verify: error: record --target needs --output FILE (a .json file to write)",
                      file=sys.stderr)
                return EXIT_USAGE
            paths = [record_target(args.target, args.output, threads=args.threads, select=args.only,
                                   progress=progress, kernel_sets=kernel_sets)]
        else:
            if args.output.exists() and not args.output.is_dir():
                print(f"lbfgs-verify: error: --output {args.output} is a file; give a folder", file=sys.stderr)
                return EXIT_USAGE
            paths = record_suite(args.output, threads=args.threads, select=args.only, progress=progress,
                                 kernel_sets=kernel_sets)
    except (TargetLoadError, GoldenTraceError) as exc:
        print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return EXIT_OK


def _drift(args: argparse.Namespace) -> int:
    from lbfgs_verify.compare.golden_traces import GoldenTraceError, compare_file, golden_traces_dir

    location = args.records or golden_traces_dir()
    files = sorted(location.glob("*.json")) if location.is_dir() else [location]
    if location.is_dir() and not files:
        print(f"lbfgs-verify: error: no record files (*.json) in {location}", file=sys.stderr)
        return EXIT_USAGE
    reports = []
    for path in files:
        try:
            report = compare_file(path, target=args.target, select=args.only)
        except GoldenTraceError as exc:
            print(f"lbfgs-verify: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        reports.append(report)
        print("\n".join(report.lines()), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([r.to_json() for r in reports], indent=2) + "\n", encoding="utf-8")
    ok = all(r.ok for r in reports)
    print("drift: " + ("OK" if ok else "CHANGED") + " (bitwise required where this CPU's kernel set is recorded "
          "with these versions; elsewhere the tolerance measured from the recorded kernel sets)")
    return EXIT_OK if ok else EXIT_FAILED


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
    from lbfgs_verify.engine.capabilities import FEATURES, CapabilityError, SkipsFileError, parse_lacks, read_skips_file

    if args.list_features:
        for name, text in FEATURES.items():
            print(f"{name:<20}  {text}")
        return EXIT_OK
    if args.list:
        return _list(args.mode, args.only)
    if args.json is not None:
        problem = _json_path_problem(args.json)
        if problem is not None:  # before loading the target: nothing is run for a report that cannot be written
            print(f"lbfgs-verify: error: --json {args.json}: {problem}; nothing was run", file=sys.stderr)
            return EXIT_USAGE
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
        execution_description,
        header_lines,
        interface_problem,
        library_versions,
        mark_baseline_failures,
        print_baseline,
        print_notes,
        print_report_details,
        print_shared_causes,
        run_check,
        select_properties,
        summary_line,
        table_header,
        table_row,
        target_version,
        write_reproductions,
    )
    from lbfgs_verify.targets.load import TARGET_ENV_VAR, TargetLoadError, load_target

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
    if args.repro is not None and args.repro.exists() and not args.repro.is_dir():
        print(f"lbfgs-verify: error: --repro {args.repro}: not a directory", file=sys.stderr)
        return EXIT_USAGE

    from lbfgs_verify.properties.base import BUDGETS

    budget = BUDGETS[args.budget]
    for line in header_lines(target.spec, target_version(target), args.mode, budget, args.threads,
                             library_versions(), sources, skips, execution_description(target)):
        print(line)
    width = max((len(p.id) for p in selected), default=10)
    print()
    print(table_header(width))

    def show(result: object) -> None:
        print(table_row(result, width), flush=True)  # type: ignore[arg-type]

    try:
        jobs = _resolve_jobs(args.jobs, target, args.budget)
        report = run_check(target, args.mode, budget, threads=args.threads, properties=selected, on_result=show,
                           lacks=sorted(lacks), skips=skips, jobs=jobs)
    except ValueError as exc:  # --jobs with a target that a worker process cannot import
        print(f"lbfgs-verify: error: --jobs {args.jobs}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.no_baseline:
        mark_baseline_failures(report, target, jobs=jobs)
    print()
    print(summary_line(report))
    print_baseline(report)
    print_shared_causes(report)
    print_notes(report)
    print_report_details(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nJSON report written to {args.json}")
    if args.repro is not None:
        write_reproductions(report, args.repro)
    return report.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
