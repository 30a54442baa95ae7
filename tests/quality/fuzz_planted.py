"""Planted state_dict faults for the fuzzer: each class breaks one route or one corruption class, on top of the
strict reference :class:`lbfgs_verify.reference.LBFGS` (which validates everything at load).

``CORRECT_VARIANTS`` hold the same optimizer with other state formats (stacked history tensors, renamed keys)
that are correct and must come out clean.
"""

from __future__ import annotations

import collections
import decimal
import pickle
from typing import Any

import torch

from lbfgs_verify.reference import LBFGS

_HISTORY = ("old_dirs", "old_stps", "ro")


def _inner(state_dict: dict[str, Any]) -> dict[str, Any] | None:
    return state_dict["state"].get(0)


# --------------------------------------------------------------------------------------------------------
# Correct variants with other state formats
# --------------------------------------------------------------------------------------------------------


class StackedHistoryLBFGS(LBFGS):
    """Correct: the history is saved as stacked tensors ``history_s``/``history_y``/``history_rho`` (one row per
    pair) under other key names; loading converts back and lets the reference validate everything."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        inner = _inner(saved)
        if inner and inner.get("old_dirs"):
            inner["history_s"] = torch.stack(inner.pop("old_dirs"))
            inner["history_y"] = torch.stack(inner.pop("old_stps"))
            inner["history_rho"] = torch.stack(inner.pop("ro"))
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = dict(state_dict)
        inner = _inner(saved) if isinstance(saved.get("state"), dict) else None
        if isinstance(inner, dict) and "history_s" in inner:
            inner = dict(inner)
            for new, old in (("history_s", "old_dirs"), ("history_y", "old_stps"), ("history_rho", "ro")):
                value = inner.pop(new, None)
                if not isinstance(value, torch.Tensor) or value.dim() < 1:
                    raise TypeError(f"state[{new!r}] must be a stacked tensor, got {type(value).__name__}")
                inner[old] = list(value.unbind(0))
            saved["state"] = {**saved["state"], 0: inner}
        super().load_state_dict(saved)


CORRECT_VARIANTS = {"reference": LBFGS, "stacked-history": StackedHistoryLBFGS}


# --------------------------------------------------------------------------------------------------------
# Route faults
# --------------------------------------------------------------------------------------------------------


class AliasingLoad(LBFGS):
    """in-memory / load-twice: after loading, the state holds the very tensors of the dict handed in, and
    ``step()`` writes its tensors in place (as torch does with ``prev_flat_grad``: torch's defect 1)."""

    def state_dict(self) -> dict[str, Any]:
        """The dict is new but its tensors are the live ones (as torch's ``Optimizer.state_dict``)."""
        saved = super().state_dict()
        inner = _inner(saved)
        if inner:
            live = self.state[self._params[0]]
            for key, value in live.items():
                if isinstance(value, torch.Tensor) and key in inner:
                    inner[key] = value
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        inner = _inner(state_dict)
        if inner:
            self.state[self._params[0]].update(inner)

    def step(self, closure: Any) -> Any:
        state = self.state[self._params[0]]
        before = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        loss = super().step(closure)
        for key, old in before.items():
            new = state.get(key)
            if isinstance(new, torch.Tensor) and new is not old and new.shape == old.shape and new.dtype == old.dtype:
                old.copy_(new)
                state[key] = old
        return loss


class LiveStateDict(LBFGS):
    """snapshot: ``state_dict()`` hands out the live state (torch's defect 2)."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        if saved["state"]:
            saved["state"][0] = self.state[self._params[0]]
        return saved


class DecimalLoss(LBFGS):
    """save-load / save-load-file: ``prev_loss`` saved as a ``decimal.Decimal``, which ``torch.load(weights_only=True)``
    refuses (deepcopy and pickle carry it)."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        inner = _inner(saved)
        if inner and "prev_loss" in inner:
            inner["prev_loss"] = decimal.Decimal(repr(inner["prev_loss"]))
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict)
        if inner and isinstance(inner.get("prev_loss"), decimal.Decimal):
            state_dict = {**state_dict, "state": {0: {**inner, "prev_loss": float(inner["prev_loss"])}}}
        super().load_state_dict(state_dict)


class _ForgetfulCopy(list):
    """A list whose deepcopy is empty (a broken ``__deepcopy__``)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return []


class _ForgetfulPickle(list):
    """A list whose pickle is empty (a broken ``__reduce__``); deepcopy is correct."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, ())

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        import copy

        return [copy.deepcopy(v, memo) for v in self]


class ForgetfulDeepcopy(LBFGS):
    """deepcopy: the history lists of ``state_dict()`` lose their items under ``copy.deepcopy``."""

    wrapper: type = _ForgetfulCopy

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        inner = _inner(saved)
        if inner and inner.get("old_dirs"):
            for key in _HISTORY:
                inner[key] = self.wrapper(inner[key])
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict)
        if inner and "old_dirs" in inner:
            state_dict = {**state_dict, "state": {0: {**inner, **{k: list(inner[k]) for k in _HISTORY}}}}
        super().load_state_dict(state_dict)


class ForgetfulPickle(ForgetfulDeepcopy):
    """pickle: the history lists of ``state_dict()`` lose their items when pickled."""

    wrapper = _ForgetfulPickle


class StatelessCopy(LBFGS):
    """optimizer-copy: ``__getstate__`` drops the optimizer state, so a copied optimizer starts afresh."""

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["state"] = collections.defaultdict(dict)
        return state


class StrictDtype(LBFGS):
    """dtype: refuses a state whose tensors are not already in the parameters' dtype (no cast at load)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict) or {}
        for key, value in inner.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.dtype != self._params[0].dtype:
                raise TypeError(f"state[{key!r}] has dtype {value.dtype}, the parameters {self._params[0].dtype}")
        super().load_state_dict(state_dict)


ROUTE_FAULTS: dict[str, type] = {
    "in-memory": AliasingLoad, "load-twice": AliasingLoad, "snapshot": LiveStateDict, "save-load": DecimalLoss,
    "save-load-file": DecimalLoss, "deepcopy": ForgetfulDeepcopy, "pickle": ForgetfulPickle,
    "optimizer-copy": StatelessCopy, "dtype": StrictDtype,
}
"""The planted fault each route must catch (``cuda`` needs a GPU and is not planted here)."""


# --------------------------------------------------------------------------------------------------------
# Corruption faults
# --------------------------------------------------------------------------------------------------------


class FreshStartOnBadState(LBFGS):
    """Every dict corruption: a state the reference rejects is dropped silently and the run starts afresh with the
    saved hyperparameters (the failure mode of a resume that silently starts a fresh L-BFGS, mace #1653)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        try:
            super().load_state_dict(state_dict)
        except (TypeError, ValueError, KeyError):
            groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
            if isinstance(groups, list) and groups and isinstance(groups[0], dict):
                for key in ("lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size"):
                    value = groups[0].get(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                        self.param_groups[0][key] = value
            self.state.clear()


class ForeignKeysStartFresh(LBFGS):
    """extra-key: a state with an entry it does not know is taken for another optimizer's and dropped silently."""

    KNOWN = frozenset({"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "al", "H_diag", "prev_flat_grad",
                       "prev_loss"})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict)
        foreign = set(state_dict["state"]) - {0} or (set(inner) - self.KNOWN if isinstance(inner, dict) else set())
        if foreign:
            state_dict = {**state_dict, "state": {}}
        super().load_state_dict(state_dict)


class WarnsNothingOnNonFinite(LBFGS):
    """non-finite: NaN/inf in the saved state replaced by zeros without a word."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict)
        if inner:
            def clean(value: Any) -> Any:
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    return torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
                if isinstance(value, list):
                    return [clean(v) for v in value]
                return value
            state_dict = {**state_dict, "state": {0: {k: clean(v) for k, v in inner.items()}}}
        super().load_state_dict(state_dict)


class BlobHistory(LBFGS):
    """hostile-pickle: keeps its history as a pickled blob and unpickles whatever it is given at load."""

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()
        inner = _inner(saved)
        if inner and "old_dirs" in inner:
            inner["history_blob"] = pickle.dumps({k: inner.pop(k) for k in _HISTORY})
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        inner = _inner(state_dict)
        if inner and "history_blob" in inner:
            history = pickle.loads(inner["history_blob"])  # the planted fault: unpickling untrusted bytes
            state_dict = {**state_dict, "state": {0: {**{k: v for k, v in inner.items() if k != "history_blob"},
                                                      **history}}}
        super().load_state_dict(state_dict)


CORRUPTION_FAULTS: dict[str, type] = {
    "missing-key": FreshStartOnBadState, "extra-key": ForeignKeysStartFresh, "wrong-type": FreshStartOnBadState,
    "wrong-size": FreshStartOnBadState, "wrong-dtype": FreshStartOnBadState, "non-finite": WarnsNothingOnNonFinite,
    "history-inconsistent": FreshStartOnBadState, "history-too-long": FreshStartOnBadState,
    "bad-counter": FreshStartOnBadState, "param-groups-mismatch": FreshStartOnBadState,
    "hostile-pickle": BlobHistory,
}
"""The planted fault each corruption class must catch. ``truncated-file`` and ``bit-flip`` damage the bytes, which
``torch.load(weights_only=True)`` reads before any target sees them: no target can plant a fault there."""
