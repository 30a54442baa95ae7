"""Naming the optimizer under test: ``module:attr`` (or the ``LBFGS_VERIFY_TARGET`` environment variable).

A target is a class or factory with ``torch.optim.LBFGS``'s constructor
``(params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100,
line_search_fn=None)`` whose result has ``step(closure)``, ``state_dict()`` and ``load_state_dict()``, or one that
translates those arguments to its own names (:data:`ARGUMENTS_ATTRIBUTE`).

The module is looked up as ``python -m`` looks it up: the current working directory comes first on ``sys.path``
(docs.python.org, "The initialization of the sys.path module search path"), so ``lbfgs-verify check
myopt:MyLBFGS`` and ``pytest --pyargs lbfgs_verify.suite --lbfgs-target myopt:MyLBFGS`` find ``./myopt.py``
without ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TARGET_ENV_VAR = "LBFGS_VERIFY_TARGET"
ARGUMENTS_ATTRIBUTE = "lbfgs_verify_arguments"
"""The optional attribute on a target class or factory whose constructor names its options otherwise: a callable
taking torch.optim.LBFGS's keyword arguments (the ones the harness draws) and returning the target's own."""


class TargetLoadError(Exception):
    """The target could not be imported or is not usable; the message says what to fix."""


@dataclass(frozen=True)
class Target:
    """The optimizer under test.

    Attributes:
        spec: the ``module:attr`` string it was loaded from.
        factory: the class or callable ``factory(params, **hyperparameters) -> optimizer``.
    """

    spec: str
    factory: Callable[..., Any]

    @property
    def name(self) -> str:
        return self.spec

    def make(self, params: Sequence[Any], **hyperparameters: Any) -> Any:
        """A new optimizer over ``params`` with the given hyperparameters (others at the target's defaults), in
        the target's own names when it declares :data:`ARGUMENTS_ATTRIBUTE`."""
        return self.factory(list(params), **own_arguments(self.factory, hyperparameters))

    @property
    def version(self) -> str:
        """The version of the distribution/module that provides the target, if it can be found."""
        module = getattr(self.factory, "__module__", "") or ""
        top = module.split(".")[0]
        mod = importlib.import_module(top) if top else None
        return str(getattr(mod, "__version__", "unknown"))


def own_arguments(factory: Any, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """``hyperparameters`` (torch.optim.LBFGS's names) in ``factory``'s names (:data:`ARGUMENTS_ATTRIBUTE`)."""
    translate = getattr(factory, ARGUMENTS_ATTRIBUTE, None)
    return dict(hyperparameters) if translate is None else translate(dict(hyperparameters))


TORCH_LBFGS_OPTIONS = ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size",
                       "line_search_fn")
"""torch.optim.LBFGS's options (torch/optim/lbfgs.py), the names the harness draws hyperparameters under."""

_PROBES: dict[str, Any] = {"lr": 0.5, "max_iter": 3, "max_eval": 4, "tolerance_grad": 1e-6, "tolerance_change": 1e-8,
                           "history_size": 5, "line_search_fn": "strong_wolfe"}


def option_names(factory: Any) -> dict[str, str]:
    """torch's option name -> the name ``factory``'s optimizers save it under (options without a counterpart left
    out): the identity, or what its :data:`ARGUMENTS_ATTRIBUTE` translation renames each one to."""
    if getattr(factory, ARGUMENTS_ATTRIBUTE, None) is None:
        return {name: name for name in TORCH_LBFGS_OPTIONS}
    names: dict[str, str] = {}
    for name in TORCH_LBFGS_OPTIONS:
        try:
            own = own_arguments(factory, {name: _PROBES[name]})
        except TypeError:  # no counterpart
            continue
        if len(own) == 1:
            names[name] = next(iter(own))
    return names


CONSTRUCTOR_HINT = (
    "lbfgs-verify builds the target as torch.optim.LBFGS is built: TARGET(params, lr=, max_iter=, max_eval=, "
    "tolerance_grad=, tolerance_change=, history_size=, line_search_fn=). Three ways to adapt a constructor that "
    "differs: (1) a factory function `def make(params, **torch_kwargs): return MyOpt(params, <your names>)` and "
    "check module:make; (2) a static method `lbfgs_verify_arguments(torch_kwargs) -> your kwargs` on the class "
    "(raise TypeError for an option you have no counterpart of, and declare it with --lacks); (3) a subclass "
    "with torch's constructor, as the adapters in examples/peers/ (e.g. examples/peers/torchmin_lbfgs.py) do."
)
"""What a constructor mismatch (a ``TypeError`` building the target with torch's arguments) says to do."""


def constructor_hint(exc: BaseException) -> str:
    """:data:`CONSTRUCTOR_HINT` after a ``TypeError`` raised building the target, else nothing."""
    return f" -- {CONSTRUCTOR_HINT}" if isinstance(exc, TypeError) else ""


def working_directory_first(root: str | os.PathLike[str] | None = None) -> None:
    """Put the current working directory first on ``sys.path`` unless it is there already, as ``python -m``
    does (docs.python.org/3/library/sys_path_init.html); then ``root`` (pytest's rootdir, where the ini file that
    names the target lives) right after it."""
    def on_path(directory: str) -> bool:
        return any(os.path.abspath(entry or os.curdir) == directory for entry in sys.path)

    cwd = os.getcwd()
    if not on_path(cwd):
        sys.path.insert(0, cwd)
    if root is not None and not on_path(os.path.abspath(root)):
        sys.path.insert(1, os.path.abspath(root))


def import_directory(spec: str) -> str | None:
    """The directory ``spec``'s top-level module was imported from (the folder holding ``myopt.py`` or the
    package folder), when it is not one the interpreter searches anyway (standard library, site-packages);
    ``None`` for those and for modules without a file. A reproduction script puts it on ``sys.path``."""
    top = spec.partition(":")[0].split(".")[0]
    module = sys.modules.get(top)
    location = getattr(module, "__file__", None)
    if not location:
        return None
    path = os.path.dirname(os.path.abspath(location))
    if os.path.basename(location).startswith("__init__."):
        path = os.path.dirname(path)
    installed = {os.path.abspath(p) for key in ("stdlib", "platstdlib", "purelib", "platlib")
                 if (p := sysconfig.get_paths().get(key))}
    return None if path in installed else path


def load_target(spec: str | None = None, *, root: str | os.PathLike[str] | None = None) -> Target:
    """Import ``module:attr`` (``attr`` may be dotted) with the working directory first on ``sys.path``, then
    ``root`` (the pytest plugin passes its rootdir; :func:`working_directory_first`); with no spec, read
    ``LBFGS_VERIFY_TARGET``."""
    if spec is None:
        spec = os.environ.get(TARGET_ENV_VAR)
        if not spec:
            raise TargetLoadError(
                f"no target given: pass module:attr (e.g. torch.optim:LBFGS) or set {TARGET_ENV_VAR}"
            )
    spec = spec.strip()
    from lbfgs_verify.targets.kinds import builtin_target, target_from_object  # target kinds beside torch's (issue 20)

    builtin = builtin_target(spec)
    if builtin is not None:
        return builtin
    if ":" not in spec:
        raise TargetLoadError(f"target {spec!r} must be written module:attr, e.g. torch.optim:LBFGS")
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise TargetLoadError(f"target {spec!r} must be written module:attr, e.g. torch.optim:LBFGS")
    working_directory_first(root)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError and whatever the module raises while importing
        where = (f" (searched the working directory {os.getcwd()} first, then sys.path: run from the folder that "
                 f"holds {module_name.split('.')[0]}.py or its package, or install it)"
                 if isinstance(exc, ModuleNotFoundError) and module_name.startswith(str(exc.name)) else "")
        raise TargetLoadError(f"cannot import module {module_name!r} of target {spec!r}: "
                              f"{type(exc).__name__}: {exc}{where}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise TargetLoadError(f"module {module_name!r} has no attribute {attr_path!r} (target {spec!r})") from exc
    kind_target = target_from_object(spec, obj)
    if kind_target is not None:
        return kind_target
    if not callable(obj):
        raise TargetLoadError(f"target {spec!r} is a {type(obj).__name__}, not a class or factory")
    return Target(spec=spec, factory=obj)
