"""Findings survive in hypothesis' example database and replay first: a directory, and a real Redis server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from hypothesis.database import DirectoryBasedExampleDatabase

from lbfgs_verify.fuzz import run_fuzz
from lbfgs_verify.fuzz.cli import open_database
from lbfgs_verify.targets.load import load_target

TORCH = load_target("torch.optim:LBFGS")


def _check_replay(database) -> None:
    first = run_fuzz(TORCH, examples=8, routes=["in-memory"], classes=[], database=database)
    found = next(r for r in first.findings if r.name == "in-memory")
    # One generated example of another seed: the finding comes back from the database, already shrunk.
    second = run_fuzz(TORCH, examples=1, seed=12345, routes=["in-memory"], classes=[], database=database)
    replayed = next(r for r in second.findings if r.name == "in-memory")
    assert replayed.example == found.example


def test_directory_database_replays_findings(tmp_path) -> None:
    database = DirectoryBasedExampleDatabase(str(tmp_path / "examples"))
    _check_replay(database)
    assert any((tmp_path / "examples").iterdir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(server: str) -> tuple[subprocess.Popen, int]:
    """A private redis-server on a free loopback port. Between choosing the port and the server binding it,
    another process (a second pytest-xdist worker running this test) may take it: the server then exits, and
    another port is tried."""
    import redis

    for _ in range(5):
        port = _free_port()
        process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(200):
            if process.poll() is not None:
                break
            try:  # the server answering must be ours, not another worker's on the same port
                if client.info("server")["process_id"] == process.pid:
                    return process, port
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        process.terminate()
        process.wait(timeout=10)
    raise RuntimeError("redis-server did not start on a free loopback port in 5 tries")


@pytest.fixture
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    pytest.importorskip("redis", reason="the 'redis' Python package is not installed (pip install redis)")
    import redis

    process, port = _start_redis(server)
    try:
        yield f"redis://127.0.0.1:{port}", redis.Redis(host="127.0.0.1", port=port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_database_replays_findings(redis_url) -> None:
    url, client = redis_url
    _check_replay(open_database(url))
    assert client.keys(b"lbfgs-verify-fuzz:*")
