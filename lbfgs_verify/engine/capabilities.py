"""Declared capabilities: what a target says it lacks, so that verdicts are given on the rest.

In the manner of array-api-tests' extension flags and skips files. A feature a target lacks is never drawn
by the strategies, the fuzzer or the report; properties that need it are reported ``skip`` with
"lacks X (declared)". Nothing is declared by default: an undeclared crash is still a failure.

Where a declaration comes from, merged: ``--lacks`` (CLI), ``--lbfgs-lacks`` / ini ``lbfgs_lacks`` (pytest),
and the optional attribute ``lbfgs_verify_lacks`` on the target class or factory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

FEATURES: dict[str, str] = {
    "complex": "complex parameters (torch.complex64/complex128)",
    "float16": "float16 parameters",
    "bfloat16": "bfloat16 parameters",
    "float32": "float32 parameters",
    "float64": "float64 parameters",
    "strong_wolfe": "line_search_fn='strong_wolfe'",
    "no_line_search": "line_search_fn=None (a fixed step t = lr)",
    "lr": "an lr other than the default (int, float or 0-dim tensor)",
    "max_eval": "max_eval other than the default max_iter * 5 // 4",
    "tolerance_change": "tolerance_change other than the default",
    "history_size_change": "editing param_groups[0]['history_size'] between step() calls",
    "no_grad_params": "parameters that never receive a gradient (p.grad stays None)",
    "sparse_gradients": "parameters whose .grad is a sparse tensor (torch.nn.Embedding(sparse=True))",
    "several_tensors": "more than one parameter tensor",
    "non_contiguous": "leaf parameters that are not contiguous in memory (strided views such as base[:, ::2])",
}
"""Every feature a target may declare it lacks, with what it means."""

LACKS_ATTRIBUTE = "lbfgs_verify_lacks"
"""The optional attribute on a target class or factory: an iterable of feature names (or a comma string)."""


class CapabilityError(ValueError):
    """A declaration names a feature that does not exist; the message lists the known ones."""


def parse_lacks(declared: str | Iterable[str] | None) -> frozenset[str]:
    """``"complex,strong_wolfe"`` or ``["complex", "strong_wolfe"]`` -> ``frozenset``; unknown names raise
    :class:`CapabilityError` naming them and listing :data:`FEATURES`."""
    if declared is None:
        return frozenset()
    items = declared.split(",") if isinstance(declared, str) else [
        part for item in declared for part in str(item).split(",")]
    names = frozenset(item.strip() for item in items if item.strip())
    unknown = sorted(names - set(FEATURES))
    if unknown:
        raise CapabilityError(f"unknown feature(s) {', '.join(unknown)} in the declared lacks; "
                              f"choose from {', '.join(FEATURES)}")
    return names


def declared_lacks(factory: Any) -> frozenset[str]:
    """The features the target's class or factory declares it lacks via :data:`LACKS_ATTRIBUTE`."""
    return parse_lacks(getattr(factory, LACKS_ATTRIBUTE, None))


def skip_reason(feature: str) -> str:
    """The reason shown for a property skipped because the target lacks ``feature``."""
    return f"lacks {feature} (declared)"


# --------------------------------------------------------------------------------------------------------
# What a run uses, and keeping lacked features out of it
# --------------------------------------------------------------------------------------------------------

TORCH_DEFAULT_TOLERANCE_CHANGE = 1e-9
"""torch.optim.LBFGS's default ``tolerance_change``."""


def _scalar(value: Any) -> float:
    return float(value.item()) if hasattr(value, "item") else float(value)


def features_of_hyperparameters(hyperparameters: Mapping[str, Any]) -> frozenset[str]:
    """The :data:`FEATURES` that constructor keyword arguments use (``line_search_fn`` missing = None)."""
    used: set[str] = set()
    line_search = hyperparameters.get("line_search_fn")
    used.add("strong_wolfe" if line_search == "strong_wolfe" else "no_line_search")
    if "lr" in hyperparameters:
        lr = hyperparameters["lr"]
        if hasattr(lr, "item") or _scalar(lr) != 1.0:
            used.add("lr")
    if hyperparameters.get("max_eval") is not None:
        max_iter = int(hyperparameters.get("max_iter", 20))
        if int(hyperparameters["max_eval"]) != max_iter * 5 // 4:
            used.add("max_eval")
    if "tolerance_change" in hyperparameters and \
            _scalar(hyperparameters["tolerance_change"]) != TORCH_DEFAULT_TOLERANCE_CHANGE:
        used.add("tolerance_change")
    return frozenset(used)


def features_of_parameters(params: Sequence[Any]) -> frozenset[str]:
    """The :data:`FEATURES` that a list of parameter tensors uses (dtypes, complex, several tensors, a
    non-contiguous layout)."""
    used: set[str] = set()
    for p in params:
        dtype = str(getattr(p, "dtype", "")).removeprefix("torch.")
        if dtype.startswith("complex"):
            used.add("complex")
            used.add("float64" if dtype == "complex128" else "float32")
        elif dtype in ("float16", "bfloat16", "float32", "float64"):
            used.add(dtype)
    if len(params) > 1:
        used.add("several_tensors")
    if any(hasattr(p, "is_contiguous") and p.numel() > 0 and not p.is_contiguous() for p in params):
        used.add("non_contiguous")
    return frozenset(used)


def features_of_problem(problem: Any) -> frozenset[str]:
    """The :data:`FEATURES` that a :class:`lbfgs_verify.problems.base.Problem` uses (its start tensors and
    whether one of them never receives a gradient)."""
    used = set(features_of_parameters(problem.start))
    tags = getattr(problem, "tags", frozenset())
    if "unused-param" in tags or "+unused" in getattr(problem, "name", ""):
        used.add("no_grad_params")
    if "sparse-grad" in tags:
        used.add("sparse_gradients")
    return frozenset(used)


_ACTIVE: ContextVar[frozenset[str]] = ContextVar("lbfgs_verify_active_lacks", default=frozenset())


def active_lacks() -> frozenset[str]:
    """The features the target under check declared it lacks (set by the runner around every property)."""
    return _ACTIVE.get()


@contextmanager
def lacking(lacks: Iterable[str]) -> Iterator[None]:
    """Within this block :func:`active_lacks` is ``lacks`` (strategies consult it, :func:`guarded` enforces it)."""
    token = _ACTIVE.set(frozenset(lacks))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def allowed(features: Iterable[str]) -> bool:
    """True when none of ``features`` is declared lacking."""
    return not (frozenset(features) & active_lacks())


_HITS: ContextVar[set[str] | None] = ContextVar("lbfgs_verify_lacks_hit", default=None)


@contextmanager
def recording_hits() -> Iterator[set[str]]:
    """Collect the lacked features that examples tried to use within this block (for the skip reason)."""
    hits: set[str] = set()
    token = _HITS.set(hits)
    try:
        yield hits
    finally:
        _HITS.reset(token)


def reject_lacked(features: Iterable[str]) -> None:
    """Drop the current hypothesis example (``hypothesis.reject``) when it uses a lacked feature: a lacked
    feature never reaches the target. Outside hypothesis the rejection propagates and the runner turns it into
    a ``skip``."""
    hit = frozenset(features) & active_lacks()
    if hit:
        from hypothesis import reject
        from hypothesis.control import currently_in_test_context

        hits = _HITS.get()
        if hits is not None:
            hits.update(hit)
        if not currently_in_test_context():  # a fixed scenario, outside hypothesis
            raise LackedFeatureUsed(f"uses {', '.join(sorted(hit))}, declared lacking")
        reject()


class LackedFeatureUsed(Exception):
    """A fixed (not drawn) scenario of a property uses a declared-lacking feature; the property is skipped."""


OMITTED_WHEN_LACKED = ("max_eval", "tolerance_change")
"""Settings that a target without them simply does not have: a property's argument for one is left out (the
target runs with its own behaviour) rather than the example being rejected. Properties whose claim is about
the setting itself declare it in ``needs``."""


TORCH_DEFAULTS: dict[str, Any] = {"lr": 1, "max_eval": None, "tolerance_change": 1e-9}
"""torch.optim.LBFGS's defaults of the settings a target may lack (torch/optim/lbfgs.py)."""


def _is_torch_default(key: str, value: Any) -> bool:
    """Whether ``value`` is torch's default for ``key`` (a plain number or None): a target that lacks the setting
    runs as with it, so the argument is left out instead of handed to a constructor that has no such option."""
    if key not in TORCH_DEFAULTS or not (value is None or isinstance(value, (int, float))) or isinstance(value, bool):
        return False
    return value == TORCH_DEFAULTS[key]


class Guarded:
    """A target wrapper: the factory refuses (by rejecting the example) parameters or hyperparameters that use
    a declared-lacking feature, so that no property can hand a lacked feature to the target by accident."""

    def __init__(self, target: Any, lacks: frozenset[str]):
        self._target = target
        self.lacks = lacks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def make(self, params: Sequence[Any], **hyperparameters: Any) -> Any:
        kept = {k: v for k, v in hyperparameters.items()
                if not (k in self.lacks and (k in OMITTED_WHEN_LACKED or _is_torch_default(k, v)))}
        reject_lacked(features_of_parameters(list(params)) | features_of_hyperparameters(kept))
        return self._target.make(params, **kept)


def guarded(target: Any, lacks: Iterable[str]) -> Any:
    """``target`` itself when nothing is lacked, else a :class:`Guarded` wrapper."""
    lacks = frozenset(lacks)
    return Guarded(target, lacks) if lacks else target


def unmet_needs(needs: Iterable[str], lacks: Iterable[str]) -> list[str]:
    """The needed features that are declared lacking (a property with any of them is skipped)."""
    return sorted(frozenset(needs) & frozenset(lacks))


def needs_reason(needs: Iterable[str], lacks: Iterable[str]) -> str | None:
    """``"lacks strong_wolfe (declared)"`` when a needed feature is lacked, else ``None``."""
    missing = unmet_needs(needs, lacks)
    return "; ".join(skip_reason(f) for f in missing) if missing else None


# --------------------------------------------------------------------------------------------------------
# Skips files
# --------------------------------------------------------------------------------------------------------


class SkipsFileError(ValueError):
    """A skips file cannot be read or names a property that does not exist; the message says which line."""


def read_skips_file(path: Any, known_ids: Iterable[str]) -> dict[str, str]:
    """``{property ID or prefix: reason}`` from a skips file, in the manner of array-api-tests' skips files.

    One entry a line: ``ID-or-prefix  # reason`` (the reason is required: a skip says why). Blank lines and
    lines starting with ``#`` are ignored. An ID that matches no registered property is an error.
    """
    from pathlib import Path

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SkipsFileError(f"skips file {file}: cannot be read ({exc.strerror or exc})") from None
    known = tuple(known_ids)
    skips: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ident, _, reason = line.partition("#")
        ident, reason = ident.strip(), reason.strip()
        if not reason:
            raise SkipsFileError(f"skips file {file}, line {number}: {ident!r} has no reason; write "
                                 f"'{ident}  # why it is skipped'")
        if " " in ident or not any(k == ident or k.startswith(ident) for k in known):
            raise SkipsFileError(f"skips file {file}, line {number}: {ident!r} is not a property ID or prefix")
        skips[ident] = reason
    return skips


def skip_from_file(property_id: str, skips: Mapping[str, str]) -> str | None:
    """The reason from a skips file that applies to ``property_id`` (exact ID or prefix), if any."""
    for ident, reason in skips.items():
        if property_id == ident or property_id.startswith(ident):
            return f"skipped by the skips file: {reason}"
    return None
