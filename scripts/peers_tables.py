"""Regenerate the verdict tables of docs/peers.md from live runs (``--budget quick``, level properties).

``python scripts/peers_tables.py --write docs/peers.md`` re-runs every peer whose package is installed and
replaces, for each, the line that starts with its ``lbfgs-verify check`` command and the table after it; the
prose around the tables (what each failure is) is left as it is. Without ``--write`` the tables are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

PEERS = {
    "examples.peers.torchmin_lbfgs:TorchminLBFGS": "torchmin",
    "examples.peers.torchmin_scipy:ScipyLBFGSB": "torchmin",
    "examples.peers.qqn_lbfgs:QQNLBFGS": "qqn_torch",
    "examples.peers.sqnm_lbfgs:SqnmLBFGS": "sqnm",
    "examples.peers.torch_strong_wolfe:TorchStrongWolfe": "torch",
}


def block(spec: str) -> str:
    """The command line, the target's version, its lacks and the counts, then the table of verdicts."""
    from lbfgs_verify.properties.base import Status
    from lbfgs_verify.properties.runner import run_check, target_version
    from lbfgs_verify.targets.load import load_target

    target = load_target(spec)
    report = run_check(target, "properties", "quick")
    counts = {s: sum(r.status is s for r in report.results) for s in Status}
    lacks = ", ".join(sorted(report.lacks)) or "none"
    lines = [f"`lbfgs-verify check {spec} --budget quick` — {target_version(target)}; declared lacks: {lacks}; "
             f"{counts[Status.PASS]} pass, {counts[Status.FAIL] + counts[Status.ERROR]} fail, "
             f"{counts[Status.SKIP]} skip.", "", "| property | verdict | cause(s) |", "| --- | --- | --- |"]
    for result in sorted(report.results, key=lambda r: r.property):
        causes = "; ".join(c.key for c in result.causes) if result.causes else (
            result.detail.splitlines()[0] if result.status is Status.SKIP and result.detail else "")
        lines.append(f"| `{result.property}` | {result.status.value} | {causes.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="the Markdown file whose tables are replaced")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/ of this checkout
    text = args.write.read_text(encoding="utf-8") if args.write else ""
    for spec, package in PEERS.items():
        if importlib.util.find_spec(package) is None:
            print(f"{spec}: {package} is not installed, left as it is", file=sys.stderr)
            continue
        new = block(spec)
        if not args.write:
            print(new + "\n")
            continue
        pattern = re.compile(r"^`lbfgs-verify check " + re.escape(spec) + r" --budget quick`.*?\n\n(\|.*\n)+",
                             re.MULTILINE)
        if not pattern.search(text):
            print(f"{spec}: no table in {args.write}", file=sys.stderr)
            return 1
        text = pattern.sub(lambda _, replacement=new + "\n": replacement, text, count=1)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
