"""The ``lbfgs-verify`` command: exit codes 0/1/2, the header and table, ``--json``, ``--list``, ``--only``, docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lbfgs_verify.cli import main
from lbfgs_verify.properties.base import REGISTRY, Property, PropertySkipped, load_all
from lbfgs_verify.properties.runner import properties_markdown
from lbfgs_verify.targets.load import TARGET_ENV_VAR

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--budget", "quick"]


def _broken_check(ctx: object) -> None:
    raise RuntimeError("harness fault for the test")


def _skipping_check(ctx: object) -> None:
    raise PropertySkipped("does not apply here")


@pytest.fixture
def extra_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two throw-away properties: one that errors, one that skips."""
    load_all()
    monkeypatch.setitem(REGISTRY, "zz_test.error", Property("zz_test.error", "zz_test", "errors", "-", "properties",
                                                            _broken_check))
    monkeypatch.setitem(REGISTRY, "zz_test.skip", Property("zz_test.skip", "zz_test", "skips", "-", "properties",
                                                           _skipping_check))


def test_passing_run_exits_0_and_prints_header_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "lbfgs_verify.reference:LBFGS", *QUICK, "--only", "state.snapshot", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "lbfgs-verify: target lbfgs_verify.reference:LBFGS (version lbfgs-verify 0.1.0)" in out
    assert re.search(r"python \S+, torch \S+, numpy \S+, scipy \S+, hypothesis \S+", out)
    assert "level properties, budget quick" in out and "threads 1" in out and "hypothesis profile quick" in out
    assert re.search(r"^state\.snapshot\s+pass\s+\d+\.\ds", out, re.MULTILINE)
    assert "1 passed, 0 failed, 0 errors, 0 skipped" in out


def test_failing_property_exits_1_with_a_reason_and_details(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "torch.optim:LBFGS", *QUICK, "--only", "state.snapshot"])
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"^state\.snapshot\s+FAIL\s+.*changed during the \d+ later step", out, re.MULTILINE)
    assert "Details of failures and errors:" in out and "problem=" in out


def test_error_exits_1_and_skips_alone_exit_0(extra_properties: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "torch.optim:LBFGS", *QUICK, "--only", "zz_test.skip"]) == 0
    assert main(["check", "torch.optim:LBFGS", *QUICK, "--only", "zz_test"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^zz_test\.error\s+ERROR\s+.*RuntimeError: harness fault", out, re.MULTILINE)
    assert re.search(r"^zz_test\.skip\s+skip\s+.*does not apply here", out, re.MULTILINE)


def test_json_report_schema(tmp_path: Path, extra_properties: None) -> None:
    path = tmp_path / "report.json"
    code = main(["check", "torch.optim:LBFGS", *QUICK, "--only", "state.snapshot,resume.torch_save,zz_test",
                 "--json", str(path)])
    assert code == 1
    report = json.loads(path.read_text())
    assert report["target"] == "torch.optim:LBFGS"
    assert report["mode"] == "properties" and report["budget"] == "quick" and report["threads"] == 1
    assert {"python", "torch", "numpy", "scipy", "hypothesis", "lbfgs_verify"} <= set(report["versions"])
    statuses = {r["property"]: r["status"] for r in report["results"]}
    assert statuses == {"resume.torch_save": "pass", "state.snapshot": "fail", "zz_test.error": "error",
                        "zz_test.skip": "skip"}
    for result in report["results"]:
        assert {"property", "status", "detail", "evidence", "seconds", "title"} <= set(result)
        assert isinstance(result["detail"], str)
    failed = next(r for r in report["results"] if r["property"] == "state.snapshot")
    assert failed["evidence"]["path"].startswith("state_dict.state[0]") and failed["evidence"]["problem"]
    assert report["summary"] == {"pass": 1, "fail": 1, "error": 1, "skip": 1}
    assert report["exit_code"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "no_such_module_xyz:LBFGS"], "cannot import module 'no_such_module_xyz'"),
        (["check", "torch.optim.LBFGS"], "must be written module:attr"),
        (["check", "torch.optim:Nope"], "has no attribute 'Nope'"),
        (["check", "builtins:dict"], "without step, state_dict, load_state_dict"),
        (["check", "torch.optim:SGD"], "unexpected keyword argument 'max_iter'"),
        (["check", "torch.optim:LBFGS", "--only", "no_such.property"], "no property ID starts with that"),
        (["check", "torch.optim:LBFGS", "--budget", "enormous"], "invalid choice: 'enormous'"),
        (["check", "torch.optim:LBFGS", "--mode", "strict"], "invalid choice: 'strict'"),
        (["check", "torch.optim:LBFGS", "--threads", "0"], "not a positive thread count"),
        (["check", "torch.optim:LBFGS", "--json", "/no/such/dir/report.json"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_target_or_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_target_exits_2_and_names_the_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(TARGET_ENV_VAR, raising=False)
    assert main(["check"]) == 2
    assert TARGET_ENV_VAR in capsys.readouterr().err


def test_target_from_the_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(TARGET_ENV_VAR, "lbfgs_verify.reference:LBFGS")
    assert main(["check", *QUICK, "--only", "resume.torch_save"]) == 0
    assert "target lbfgs_verify.reference:LBFGS" in capsys.readouterr().out


def test_list_prints_every_documented_id_of_the_mode(capsys: pytest.CaptureFixture[str]) -> None:
    load_all()
    assert main(["check", "--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert listed == {p.id for p in REGISTRY.values() if "properties" in p.modes}
    assert main(["check", "--list", "--mode", "conformance", "--only", "conformance"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert listed == {p.id for p in REGISTRY.values() if p.id.startswith("conformance.")}
    assert {"conformance.trajectory", "conformance.state_into_torch", "conformance.state_from_torch"} <= listed


def test_property_ids_are_stable_dotted_names_under_their_category() -> None:
    load_all()
    for prop in REGISTRY.values():
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", prop.id), prop.id
        assert prop.id.split(".")[0] == prop.category, prop.id
        assert prop.title and prop.catches, prop.id


def test_docs_properties_md_is_in_sync_with_the_registry() -> None:
    """docs/properties.md is generated; regenerate with `lbfgs-verify docs --write docs/properties.md`."""
    documented = (REPO / "docs" / "properties.md").read_text(encoding="utf-8")
    assert documented == properties_markdown(), (
        "docs/properties.md is out of date: run `lbfgs-verify docs --write docs/properties.md`")


def test_docs_command_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "properties.md"
    assert main(["docs", "--check", str(path)]) == 1
    assert main(["docs", "--write", str(path)]) == 0
    assert main(["docs", "--check", str(path)]) == 0
    assert "| `resume.torch_save` |" in path.read_text()


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "lbfgs_verify", "check", "--list", "--only", "resume."],
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resume.torch_save" in done.stdout


def test_json_into_a_missing_directory_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The path is checked first: with a target that cannot even be imported, the message is about --json."""
    missing = tmp_path / "no_such_dir" / "report.json"
    assert main(["check", "no_such_module_xyz:LBFGS", "--json", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"directory {missing.parent} does not exist" in err and "nothing was run" in err
    assert "no_such_module_xyz" not in err
    assert main(["check", "no_such_module_xyz:LBFGS", "--json", str(tmp_path)]) == 2
    assert "it is a directory" in capsys.readouterr().err
    assert not missing.parent.exists()


@pytest.mark.parametrize("argv", [["check", "--list"], ["docs"]], ids=["check --list", "docs"])
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """``lbfgs-verify check --list | head``: the reader is gone before anything is written; no BrokenPipeError."""
    with subprocess.Popen([sys.executable, "-m", "lbfgs_verify", *argv], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=120) == 0, err
    assert "BrokenPipeError" not in err and "Traceback" not in err, err
