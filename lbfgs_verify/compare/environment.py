"""The environment every bitwise comparison runs in: a fixed thread count, the global RNGs restored, known
harmless warnings silenced, and how signed zeros in optimizer state compare at each level.

Why: torch's results depend on the thread count (reductions split by thread); a check must not leak seeds into
the next; ``+0.0``/``-0.0`` in state is a level question (docs/properties.md, "Signed zeros").
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Iterator
from contextvars import ContextVar

import numpy as np
import torch


@contextlib.contextmanager
def isolated_global_rng() -> Iterator[None]:
    """Restore torch's, ``random``'s and numpy's global RNG states on exit (checks must not leak seeds)."""
    torch_state = torch.get_rng_state()
    py_state = random.getstate()
    np_state = np.random.get_state()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)


def disturb_global_rng(seed: int) -> None:
    """Reseed torch, ``random`` and numpy as an unrelated, resumed process would have them.

    torch's CPU generator is seeded directly, CUDA's only where CUDA is available: ``torch.manual_seed`` also
    queues a lazy seed for every device type whose runtime is not initialized, formatting the call stack each
    time (about 1 ms per call in torch 2.13, a tenth of a ci check's time), for devices no check uses."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def thread_count(threads: int) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)`` and restore the previous count (bits depend on it)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


KNOWN_HARMLESS_WARNINGS: tuple[str, ...] = (
    # torch >= 2.12 warns (once per process) when float() is applied to a loss that requires grad; torch's own
    # LBFGS.step does float(closure()), so every target triggers it. Under pytest's filterwarnings=error the
    # first occurrence would fail whichever check happens to run first.
    r"Converting a tensor with requires_grad=True to a scalar",
)


@contextlib.contextmanager
def quiet_known_warnings() -> Iterator[None]:
    """Ignore :data:`KNOWN_HARMLESS_WARNINGS` (and only those) inside the block."""
    with warnings.catch_warnings():
        for message in KNOWN_HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


@contextlib.contextmanager
def comparison_environment(threads: int, level: str | None = None) -> Iterator[None]:
    """:func:`isolated_global_rng` + :func:`thread_count` + :func:`quiet_known_warnings`: wrap every bitwise
    comparison in this. With the check's ``level``, optimizer state is compared as that level demands
    (:func:`state_zero_sign_for`)."""
    with isolated_global_rng(), thread_count(threads), quiet_known_warnings(), state_zero_sign(
            state_zero_sign_for(level) if level is not None else current_state_zero_sign()):
        yield


# --------------------------------------------------------------------------------------------------------
# Signed zeros in optimizer state
# --------------------------------------------------------------------------------------------------------

_STATE_ZERO_SIGN: ContextVar[str] = ContextVar("lbfgs_verify_state_zero_sign", default="bitwise")


def state_zero_sign_for(level: str) -> str:
    """How optimizer state compares at ``level``: ``ignore`` (+0.0 == -0.0, noted) at ``properties`` and
    ``semantics``, ``bitwise`` at ``conformance``. Parameters, losses and closure values are always bitwise.

    Why: IEEE 754-2019 §6.3 leaves the sign of a zero to the operation (``-g`` of a zero gradient is -0.0,
    ``0.0 * -1`` too); a zero entry of ``d`` or ``s`` moves nothing, so a correct optimizer whose resumed state
    holds -0.0 where the uninterrupted one holds 0.0 follows the same parameters. Only ``conformance`` claims
    torch's bytes (docs/properties.md, "Signed zeros")."""
    return "bitwise" if level == "conformance" else "ignore"


@contextlib.contextmanager
def state_zero_sign(mode: str) -> Iterator[None]:
    """Within the block, :func:`lbfgs_verify.engine.runs.state_difference` and
    :func:`~lbfgs_verify.engine.runs.step_divergence` compare state in ``mode``
    (:data:`lbfgs_verify.compare.bitwise.ZERO_SIGN_MODES`)."""
    from lbfgs_verify.compare.bitwise import ZERO_SIGN_MODES

    if mode not in ZERO_SIGN_MODES:
        raise ValueError(f"zero-sign mode must be one of {', '.join(ZERO_SIGN_MODES)}, got {mode!r}")
    token = _STATE_ZERO_SIGN.set(mode)
    try:
        yield
    finally:
        _STATE_ZERO_SIGN.reset(token)


def current_state_zero_sign() -> str:
    """The zero-sign mode in force for optimizer state (``bitwise`` outside any :func:`state_zero_sign`)."""
    return _STATE_ZERO_SIGN.get()
