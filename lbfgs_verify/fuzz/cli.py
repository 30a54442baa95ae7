"""``lbfgs-verify fuzz TARGET [--examples N] [--seed S] [--json PATH] [--routes ...] [--classes ...] [--lacks ...]
[--database DIR|redis://HOST:PORT|none]``.

Progress (one line per route and class, on stderr), then the route x outcome and class x outcome matrices (once,
on stdout, with a legend saying which outcomes are defects), then each finding with its shrunk example and a
standalone reproduction. Exit 0: no finding; 1: findings; 2: usage (bad target,
unknown route/class/feature, unusable database).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbfgs_verify.fuzz.names import CLASS_NAMES, ROUTE_NAMES

if TYPE_CHECKING:
    from lbfgs_verify.fuzz.runner import FuzzReport

DEFAULT_DATABASE = ".lbfgs-verify/fuzz-examples"
"""Where findings are kept between runs by default (a hypothesis directory example database)."""
DEFAULT_REPRO_DIR = ".lbfgs-verify/reproductions"
"""Where the standalone reproduction of each finding is written by default."""


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``fuzz`` subcommand to ``lbfgs-verify``'s subparsers."""
    fuzz = commands.add_parser(
        "fuzz", help="fuzz state_dict round trips and corrupted checkpoints",
        description="Generate reachable optimizer states, carry them along every route and damage them with every "
                    "corruption class; print the outcome matrices and each finding with a reproduction. Exit 0: no "
                    "finding; 1: findings; 2: usage.")
    fuzz.add_argument("target", nargs="?", metavar="TARGET",
                      help="module:attr (default: $LBFGS_VERIFY_TARGET), e.g. torch.optim:LBFGS")
    fuzz.add_argument("--examples", type=int, default=60, metavar="N",
                      help="generated cases per route and per corruption class (default 60)")
    fuzz.add_argument("--seed", type=int, default=0, metavar="S", help="random seed of the campaign (default 0)")
    fuzz.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    fuzz.add_argument("--routes", type=_names, metavar="R1,R2",
                      help=f"routes to run (default all: {', '.join(ROUTE_NAMES)})")
    fuzz.add_argument("--classes", type=_names, metavar="C1,C2",
                      help=f"corruption classes to run (default all: {', '.join(CLASS_NAMES)})")
    fuzz.add_argument("--lacks", metavar="F1,F2", default="",
                      help="features the target lacks (never drawn); see lbfgs_verify.engine.capabilities.FEATURES")
    fuzz.add_argument("--database", default=DEFAULT_DATABASE, metavar="DIR|redis://HOST:PORT|none",
                      help=f"hypothesis example database keeping findings between runs (default {DEFAULT_DATABASE})")
    fuzz.add_argument("--repro-dir", type=Path, default=Path(DEFAULT_REPRO_DIR), metavar="DIR",
                      help=f"where each finding's standalone reproduction is written (default {DEFAULT_REPRO_DIR})")
    fuzz.add_argument("--threads", type=int, default=1, help="torch thread count (bits depend on it; default 1)")
    fuzz.add_argument("--level", choices=("properties", "semantics", "conformance"), default="properties",
                      help="how optimizer state compares, as in check: signed zeros equal at properties/semantics, "
                           "bytes at conformance (default properties)")
    return fuzz


def open_database(spec: str) -> Any:
    """``none`` -> ``None``; ``redis://HOST:PORT`` -> hypothesis' Redis database; anything else a directory.

    Raises ``ValueError`` naming what is wrong (bad URL, missing ``redis`` package, server not answering)."""
    if spec.lower() == "none":
        return None
    if spec.startswith("redis://"):
        host, _, port = spec.removeprefix("redis://").rstrip("/").partition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--database {spec}: write redis://HOST:PORT")
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError as exc:
            raise ValueError(f"--database {spec}: the 'redis' Python package is not installed ({exc})") from exc
        client = redis.Redis(host=host, port=int(port))
        try:
            client.ping()
        except Exception as exc:
            raise ValueError(f"--database {spec}: no Redis server answers there ({type(exc).__name__}: {exc})") from exc
        return RedisExampleDatabase(client, key_prefix=b"lbfgs-verify-fuzz:")
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(spec)


OUTCOME_MEANINGS: dict[str, str] = {
    "exact": "the continuation is bitwise the uninterrupted run",
    "diverged": "the continuation differs from the uninterrupted run",
    "crashed": "the route raised",
    "rejected-at-load": "load_state_dict refused the damaged state, optimizer unchanged",
    "warned-at-load": "loaded with a warning",
    "absorbed": "loaded silently, the continuation is exact anyway",
    "error-at-step": "loaded silently, a later step() raised",
    "silent": "loaded silently and the run went elsewhere",
    "every-load-diverges": "loaded silently; the undamaged state diverges too (a resume failure): not judged",
    "rejected-but-changed": "refused at load after changing the optimizer",
    "code-executed": "a hostile pickle ran code",
}
"""One line per outcome for the legend (the classification is :mod:`lbfgs_verify.fuzz.outcomes`)."""


def legend_lines(outcomes: list[str] | None = None) -> list[str]:
    """Which outcomes are defects (counted as findings, exit 1) and which are fine, with what each means;
    ``outcomes`` limits the legend to the columns shown."""
    from lbfgs_verify.fuzz.outcomes import CORRUPT_OUTCOMES, FINDINGS, VALID_OUTCOMES

    shown = [o for o in (*VALID_OUTCOMES, *CORRUPT_OUTCOMES) if outcomes is None or o in outcomes]
    lines = ["Cells count generated cases ('.' = none). Outcomes marked * are defects (findings, exit 1):"]
    width = max((len(o) for o in shown), default=0)
    lines += [f"  {'*' if o in FINDINGS else ' '} {o:<{width}}  {OUTCOME_MEANINGS[o]}" for o in shown]
    return lines


def matrix_lines(report: FuzzReport) -> list[str]:
    """The route x outcome and class x outcome tables, as printed (defect columns marked ``*``), and the
    legend of the outcomes shown."""
    from lbfgs_verify.engine.runs import ROUTES
    from lbfgs_verify.fuzz.outcomes import CORRUPT_OUTCOMES, FINDINGS, VALID_OUTCOMES

    lines: list[str] = []
    shown: list[str] = []
    matrix = report.matrix()
    for title, rows, columns in (("route", matrix["routes"], VALID_OUTCOMES),
                                 ("class", matrix["classes"], CORRUPT_OUTCOMES)):
        names = list(rows) + [n for n in report.skipped if n not in rows and (n in ROUTES) == (title == "route")]
        if not names:
            continue
        width = max(len(title), *(len(n) for n in names))
        used = [c for c in columns if any(c in rows.get(n, {}) for n in names)] or list(columns[:1])
        shown += used
        heads = [("*" if c in FINDINGS else "") + c for c in used]
        lines.append(f"{title:<{width}}  " + "  ".join(f"{h:>{max(len(h), 3)}}" for h in heads))
        for name in names:
            if name in report.skipped and not rows.get(name):
                lines.append(f"{name:<{width}}  skipped: {report.skipped[name]}")
                continue
            cells = "  ".join(f"{rows[name].get(c, 0) or '.':>{max(len(h), 3)}}"
                              for c, h in zip(used, heads, strict=True))
            lines.append(f"{name:<{width}}  {cells}")
        lines.append("")
    if shown:
        lines += [*legend_lines(shown), ""]
    return lines


def run(args: argparse.Namespace) -> int:
    """Dispatch of ``lbfgs-verify fuzz`` (see the module docstring for the exit status)."""
    import os

    from lbfgs_verify.engine.capabilities import CapabilityError, parse_lacks
    from lbfgs_verify.engine.runs import ROUTES
    from lbfgs_verify.fuzz.corruptions import CORRUPTIONS
    from lbfgs_verify.fuzz.runner import run_fuzz
    from lbfgs_verify.targets.load import TARGET_ENV_VAR, TargetLoadError, load_target

    def usage(message: str) -> int:
        print(f"lbfgs-verify fuzz: error: {message}", file=sys.stderr)
        return 2

    spec = args.target or os.environ.get(TARGET_ENV_VAR)
    if not spec:
        return usage(f"no target: pass TARGET as module:attr (e.g. torch.optim:LBFGS) or set {TARGET_ENV_VAR}")
    if args.examples < 1:
        return usage(f"--examples {args.examples}: must be at least 1")
    for given, known, what in ((args.routes, ROUTES, "route"), (args.classes, CORRUPTIONS, "class")):
        unknown = [n for n in given or () if n not in known]
        if unknown:
            return usage(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.json is not None and not args.json.parent.exists():
        return usage(f"--json {args.json}: directory {args.json.parent} does not exist")
    try:
        lacks = parse_lacks(args.lacks)
        target = load_target(spec)
        database = open_database(args.database)
    except (CapabilityError, TargetLoadError, ValueError) as exc:
        return usage(str(exc))
    from lbfgs_verify.properties.runner import declared_lacks_of, interface_problem

    try:
        declared = [f for fs in declared_lacks_of(target, ("--lacks", sorted(lacks))).values() for f in fs]
    except CapabilityError as exc:
        return usage(f"target {spec!r}: {exc}")
    problem = interface_problem(target, declared)  # a constructor mismatch says how to adapt, before any case
    if problem is not None:
        return usage(f"target {spec!r} cannot be fuzzed: {problem}")

    print(f"lbfgs-verify fuzz {target.spec}: {args.examples} example(s) per route and per class, seed {args.seed}"
          + (f", lacks {', '.join(sorted(lacks))}" if lacks else "") + f", level {args.level}", flush=True)

    def progress(kind: str, name: str, counts: dict[str, int]) -> None:  # the counts go in the matrix, once
        done = sum(counts.values())
        print(f"  {'route' if kind == 'valid' else 'class'} {name}: {done} case(s) done", file=sys.stderr, flush=True)

    report = run_fuzz(target, examples=args.examples, seed=args.seed, routes=args.routes, classes=args.classes,
                      lacks=lacks, on_progress=progress, database=database, threads=args.threads,
                      level=args.level)
    print()
    for line in matrix_lines(report):
        print(line)
    for note in report.notes:
        print(f"note: {note}\n")
    findings = report.findings
    print(f"{len(findings)} finding(s) in {report.seconds:.0f} s" + (":" if findings else ""))
    for number, case in enumerate(findings, 1):
        label = case.name if case.kind == "valid" else f"{case.name} (via {case.example.get('route')})"
        print(f"\n[{number}] {case.kind} {label}: {case.outcome}\n    {case.message}")
        shown = {k: v for k, v in case.example.items() if k in ("state_kind", "problem", "hyperparameters", "split",
                                                                 "n_after", "corruption", "follower")}
        print(f"    example: {json.dumps(shown, default=str)}")
        if case.reproduction:
            args.repro_dir.mkdir(parents=True, exist_ok=True)
            path = args.repro_dir / f"{case.kind}-{case.name}-{case.outcome}.py"
            path.write_text(case.reproduction, encoding="utf-8")
            print(f"    reproduction: python {path}")
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nJSON written to {args.json}")
    return report.exit_code
