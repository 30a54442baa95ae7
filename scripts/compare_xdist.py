"""Run a selection of tests serially and with pytest-xdist, and compare the outcome of every test.

    python scripts/compare_xdist.py tests/fast -n 2
    python scripts/compare_xdist.py tests/fast/test_fuzz.py tests/fast/test_fuzz_database.py -n 2 -- -m "not slow"

Both runs use the same pytest arguments (and ``LBFGS_VERIFY_PROFILE``, default ``ci``) and write a JUnit XML
report (``--junitxml``); the outcome of a test is passed, failed, error, skipped (with its reason) or xfailed.
Prints each run's tally and wall time, then every test whose outcome differs or that ran in only one of the
runs; exits 1 when there is any difference, 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

GROUP_SUFFIX = re.compile(r"@[^\[\]@]*$")


def outcomes(junit_xml: Path) -> dict[str, str]:
    """``{test id: outcome}`` from a pytest JUnit XML file (``classname::name``)."""
    found: dict[str, str] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        # pytest-xdist's own --dist loadgroup appends "@GROUP" to the ids of tests marked xdist_group.
        test = GROUP_SUFFIX.sub("", f"{case.get('classname')}::{case.get('name')}")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag if child.tag == "error" else "failed"
                break
            if child.tag == "skipped":
                kind = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                outcome = f"{kind}: {child.get('message', '')}"
                break
        # A test can have two entries (a failing teardown after the call): keep the worse.
        if found.get(test, "passed") == "passed":
            found[test] = outcome
    return found


def run(paths: list[str], extra: list[str], junit_xml: Path, workers: str | None, dist: str) -> float:
    """One pytest run; returns its wall time in seconds."""
    command = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", f"--junitxml={junit_xml}",
               *extra]
    if workers is not None:
        command += ["-n", workers, f"--dist={dist}"]
    env = {**os.environ}
    env.setdefault("LBFGS_VERIFY_PROFILE", "ci")
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if not junit_xml.exists():
        tail = done.stdout[-3000:] + done.stderr[-3000:]
        sys.exit(f"pytest wrote no {junit_xml.name} (exit {done.returncode}):\n{tail}")
    return seconds


def seconds_per_file(junit_xml: Path) -> dict[str, float]:
    """Seconds per test module (set-up, call and tear-down of its tests, as JUnit records them)."""
    found: dict[str, float] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        module = str(case.get("classname"))
        while module and module.rsplit(".", 1)[-1][:1].isupper():  # tests in classes: Module.Class
            module = module.rsplit(".", 1)[0]
        found[module] = found.get(module, 0.0) + float(case.get("time") or 0.0)
    return found


def tally(found: dict[str, str]) -> str:
    counts = Counter(outcome.split(":")[0] for outcome in found.values())
    return ", ".join(f"{counts[k]} {k}" for k in sorted(counts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="test files or folders (as given to pytest)")
    parser.add_argument("-n", "--workers", default="2", help="pytest-xdist workers (a number or auto; default 2)")
    parser.add_argument("--dist", default="loadgroup", help="pytest-xdist distribution mode (default loadgroup, as CI)")
    parser.add_argument("--keep", type=Path, help="folder to keep serial.xml and xdist.xml in")
    parser.add_argument("--serial-xml", type=Path, help="a serial run's JUnit XML to reuse (same selection)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if args.serial_xml is None:
            serial_seconds = run(args.paths, extra, folder / "serial.xml", None, args.dist)
        else:
            serial_seconds = float(ET.parse(args.serial_xml).getroot().find("testsuite").get("time", "nan"))
            if args.serial_xml.resolve() != (folder / "serial.xml").resolve():
                shutil.copyfile(args.serial_xml, folder / "serial.xml")
        xdist_seconds = run(args.paths, extra, folder / "xdist.xml", args.workers, args.dist)
        serial, parallel = outcomes(folder / "serial.xml"), outcomes(folder / "xdist.xml")
        per_file = seconds_per_file(folder / "serial.xml"), seconds_per_file(folder / "xdist.xml")
    print("seconds per file (serial | in the xdist workers):")
    for module in sorted(per_file[0].keys() | per_file[1].keys(), key=lambda m: -per_file[0].get(m, 0.0)):
        print(f"  {per_file[0].get(module, 0.0):7.1f} | {per_file[1].get(module, 0.0):7.1f}  {module}")
    print(f"serial:           {len(serial)} tests ({tally(serial)}) in {serial_seconds:.0f} s")
    print(f"-n {args.workers} --dist {args.dist}: {len(parallel)} tests ({tally(parallel)}) in {xdist_seconds:.0f} s")
    differences = [(test, serial.get(test, "(not run)"), parallel.get(test, "(not run)"))
                   for test in sorted(serial.keys() | parallel.keys()) if serial.get(test) != parallel.get(test)]
    for test, one, other in differences:
        print(f"DIFFERENT {test}\n    serial: {one}\n    xdist:  {other}")
    print(f"{len(differences)} test(s) differ")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
