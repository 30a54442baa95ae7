"""Target kinds beside torch.optim.LBFGS's shape (issue 20): steppers with explicit state and functional
minimizers, their protocols (:mod:`lbfgs_verify.targets.protocols`) and the built-in adapters.

A target is one of these kinds when it is a built-in adapter name (:data:`BUILTINS`: ``optax:lbfgs``,
``jaxopt:LBFGS``, ``optimistix:LBFGS``, ``tfp:lbfgs_minimize``, ``scipy:L-BFGS-B``,
``lbfgs_verify.reference:minimize_lbfgsb``, ``pylbfgs``, ``lbfgsb``, ``torchmin:minimize``) or an object whose attribute
``lbfgs_verify_kind`` is ``"stepper"`` or ``"functional"`` (a user's own adapter, docs/adapters.md).
:func:`lbfgs_verify.targets.load.load_target` hands the spec here first (:func:`builtin_target`), and any loaded object
(:func:`target_from_object`). The JAX adapters need the ``jax`` extra, tfp, PyLBFGS, lbfgsb and torchmin the
``peers`` extra; without it they are refused naming it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from lbfgs_verify.targets.load import Target, TargetLoadError
from lbfgs_verify.targets.protocols import FUNCTIONAL, KINDS, STEPPER, TORCH, Conventions

__all__ = ["BUILTINS", "FUNCTIONAL", "KINDS", "STEPPER", "TORCH", "Conventions", "KindTarget", "builtin_target",
           "kind_of", "kind_skip_reason", "target_from_object"]

KIND_ATTRIBUTE = "lbfgs_verify_kind"
JAX_EXTRA = 'pip install "lbfgs-verify[jax]"'

BUILTINS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "optax:lbfgs": ("lbfgs_verify.targets.adapters.optax_lbfgs", "ADAPTER", ("jax", "optax")),
    "jaxopt:LBFGS": ("lbfgs_verify.targets.adapters.jaxopt_lbfgs", "ADAPTER", ("jax", "jaxopt")),
    "optimistix:LBFGS": ("lbfgs_verify.targets.adapters.optimistix_lbfgs", "ADAPTER", ("jax", "optimistix")),
    "tfp:lbfgs_minimize": ("lbfgs_verify.targets.adapters.tfp_lbfgs", "ADAPTER",
                           ("jax", "tensorflow_probability.substrates.jax")),
    "scipy:L-BFGS-B": ("lbfgs_verify.targets.adapters.scipy_lbfgsb", "SCIPY", ()),
    "lbfgs_verify.reference:minimize_lbfgsb": ("lbfgs_verify.targets.adapters.scipy_lbfgsb", "REFERENCE", ()),
    "pylbfgs": ("lbfgs_verify.targets.adapters.pylbfgs", "ADAPTER", ("lbfgs",)),
    "lbfgsb": ("lbfgs_verify.targets.adapters.lbfgsb_package", "ADAPTER", ("lbfgsb",)),
    "torchmin:minimize": ("lbfgs_verify.targets.adapters.torchmin_lbfgs", "ADAPTER", ("torchmin",)),
}
"""Built-in adapter names -> (module, attribute, the modules of an optional extra it needs)."""

EXTRA_OF_MODULE: dict[str, str] = {
    "jax": "jax", "jaxlib": "jax", "optax": "jax", "jaxopt": "jax", "optimistix": "jax",
    "tensorflow_probability.substrates.jax": "peers", "lbfgs": "peers", "lbfgsb": "peers", "torchmin": "peers",
}
"""The extra of pyproject.toml that installs each module a built-in adapter needs (``jax``: the JAX stack CI
installs; ``peers``: the other libraries compared, pytorch-minimize, PyLBFGS, lbfgsb, tfp-nightly)."""


@dataclass(frozen=True)
class KindTarget(Target):
    """A target of kind ``stepper`` or ``functional``: ``factory`` is the library's own object (its version is
    the one the header prints), ``adapter`` the object the harness drives."""

    kind: str = STEPPER
    adapter: Any = None

    def make(self, params: Any, **hyperparameters: Any) -> Any:
        """Refused: a stepper or functional target has no torch.optim.LBFGS constructor."""
        raise TypeError(f"target {self.spec!r} is a {self.kind} target: it has no torch.optim.LBFGS constructor; "
                        "`lbfgs-verify check` runs it through its adapter (docs/adapters.md), the torch-only "
                        "commands do not take it")


def extra_command(modules: tuple[str, ...]) -> str:
    """``pip install "lbfgs-verify[...]"`` naming the extras that install ``modules``."""
    extras = sorted({EXTRA_OF_MODULE.get(name, "peers") for name in modules})
    return f'pip install "lbfgs-verify[{",".join(extras)}]"'


def require_jax(spec: str, modules: tuple[str, ...] = ("jax", "optax", "jaxopt")) -> None:
    """Refuse ``spec`` with a message naming the extra (:data:`EXTRA_OF_MODULE`, ``jax`` or ``peers``) when one of
    ``modules`` cannot be imported. jaxopt warns
    on import that it is no longer maintained (jaxopt/__init__.py, 0.8.5); the adapter's docstring says so, and
    the warning is not raised as an error here."""
    import warnings

    for name in modules:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="JAXopt is no longer maintained", category=DeprecationWarning)
                importlib.import_module(name)
        except (ImportError, AttributeError) as exc:  # AttributeError: a release built for another jax (tfp 0.25)
            what = "the JAX stack, which is" if EXTRA_OF_MODULE.get(name, "peers") == "jax" else f"{name}, which is in"
            raise TargetLoadError(f"target {spec!r} needs {what} an optional extra: {extra_command(modules)} "
                                  f"(cannot import {name}: {exc})") from exc


def builtin_target(spec: str) -> KindTarget | None:
    """The built-in adapter named ``spec``, or ``None`` when ``spec`` names none."""
    entry = BUILTINS.get(spec.strip())
    if entry is None:
        return None
    module, attribute, modules = entry
    if modules:
        require_jax(spec, modules)
    adapter = getattr(importlib.import_module(module), attribute)
    return KindTarget(spec=spec.strip(), factory=adapter.library_object(), kind=adapter.kind, adapter=adapter)


def target_from_object(spec: str, obj: Any) -> KindTarget | None:
    """A :class:`KindTarget` for an object that declares ``lbfgs_verify_kind``; ``None`` for any other."""
    kind = getattr(obj, KIND_ATTRIBUTE, None)
    if kind is None:
        return None
    if kind not in (STEPPER, FUNCTIONAL):
        raise TargetLoadError(f"target {spec!r}: {KIND_ATTRIBUTE} = {kind!r}; choose {STEPPER!r} or {FUNCTIONAL!r}")
    adapter = obj() if isinstance(obj, type) else obj
    conventions = getattr(adapter, "conventions", None)
    if not isinstance(conventions, Conventions):
        raise TargetLoadError(f"target {spec!r} (kind {kind}) must declare `conventions` "
                              "(lbfgs_verify.targets.protocols.Conventions): see docs/adapters.md")
    needed = ("make",) if kind == STEPPER else ("minimize",)
    missing = [name for name in needed if not callable(getattr(adapter, name, None))]
    if missing:
        raise TargetLoadError(f"target {spec!r} (kind {kind}) has no {', '.join(missing)}: see docs/adapters.md")
    return KindTarget(spec=spec, factory=obj, kind=kind, adapter=adapter)


def kind_of(target: Any) -> str:
    """``torch``, ``stepper`` or ``functional``."""
    return getattr(target, "kind", TORCH)


KIND_CATEGORIES = {"kinds": (STEPPER, FUNCTIONAL), "stepper": (STEPPER,), "functional": (FUNCTIONAL,)}
"""Property ID prefixes of :mod:`lbfgs_verify.properties.kinds` -> the kinds they run on."""


def kind_skip_reason(property_id: str, target: Any) -> str:
    """Why the property ``property_id`` does not apply to ``target``'s kind ("" when it does): the torch
    properties on the other kinds, the kinds' properties on torch targets and on the other kind."""
    kind = kind_of(target)
    prefix = property_id.split(".")[0]
    runs_on = KIND_CATEGORIES.get(prefix, (TORCH,))
    if kind in runs_on:
        return ""
    if kind != TORCH and runs_on == (TORCH,):
        return f"not applicable ({kind} target: no step(closure)/state_dict API)"
    if kind == TORCH:
        return "not applicable (torch optimizer target: the torch properties check it)"
    if prefix == STEPPER:
        return "not applicable (no state API)"
    return "not applicable (stepper target: no minimize(fun, x0, maxiter, callback) API)"
