"""The ``state_dict`` envelope shared by the reference optimizers: packing, hooks and the outer checks.

Both references keep all their state under the first parameter's id, in one parameter group, like
``torch.optim.LBFGS`` (``torch/optim/optimizer.py::Optimizer.state_dict`` / ``load_state_dict``). This module
checks everything around that inner state (keys, one group, parameter count, where the state sits) and runs
torch's optimizer hooks; each optimizer validates its own inner state and options.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

GROUP = "state_dict['param_groups'][0]"


def pack_state_dict(optimizer: torch.optim.Optimizer, inner: dict[str, Any] | None,
                    group_keys: Iterable[str] | None = None) -> dict[str, Any]:
    """``{"state": {0: inner} or {}, "param_groups": [options + params ids]}``, with torch's hooks applied.

    ``group_keys`` selects the options to save (default: every key of the group but ``params``); values are
    deep-copied so that the returned dict is a snapshot.
    """
    for pre_hook in optimizer._optimizer_state_dict_pre_hooks.values():
        pre_hook(optimizer)
    group = optimizer.param_groups[0]
    keys = [k for k in group if k != "params"] if group_keys is None else list(group_keys)
    packed = {k: copy.deepcopy(group[k]) for k in keys}
    packed["params"] = list(range(len(group["params"])))
    result: dict[str, Any] = {"state": {0: inner} if inner else {}, "param_groups": [packed]}
    for post_hook in optimizer._optimizer_state_dict_post_hooks.values():
        hook_result = post_hook(optimizer, result)
        if hook_result is not None:
            result = hook_result
    return result


@dataclass(frozen=True)
class Unpacked:
    """The checked pieces of a saved dict: the options (deep-copied, ``params`` removed) and the inner state
    (``None`` when the optimizer had not stepped), with the path naming it in error messages."""

    options: dict[str, Any]
    inner: Any
    where: str


def unpack_state_dict(optimizer: torch.optim.Optimizer, state_dict: Any, option_keys: Iterable[str], *,
                      reject_unknown_options: bool) -> Unpacked:
    """Run the load pre-hooks and check the envelope; raises ``TypeError``/``ValueError`` naming the key.

    Nothing is changed on the optimizer; call :func:`finish_load` after installing the new state.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
    state_dict = dict(state_dict)
    for pre_hook in optimizer._optimizer_load_state_dict_pre_hooks.values():
        hook_result = pre_hook(optimizer, state_dict)
        if hook_result is not None:
            state_dict = hook_result
    for key in ("state", "param_groups"):
        if key not in state_dict:
            raise ValueError(f"state_dict is missing {key!r} (an optimizer state_dict has 'state' and "
                             "'param_groups')")
    unknown = sorted(str(k) for k in state_dict if k not in ("state", "param_groups"))
    if unknown:
        raise ValueError(f"state_dict has unknown keys {unknown}")
    saved_state = state_dict["state"]
    if not isinstance(saved_state, Mapping):
        raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
    groups = state_dict["param_groups"]
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], Mapping):
        raise ValueError("state_dict['param_groups'] must be a list holding exactly one dict (one parameter group)")
    saved = groups[0]
    option_keys = tuple(option_keys)
    if reject_unknown_options:
        unknown = sorted(str(k) for k in saved if k not in (*option_keys, "params"))
        if unknown:
            raise ValueError(f"{GROUP} has unknown keys {unknown}")
    missing = [k for k in (*option_keys, "params") if k not in saved]
    if missing:
        raise ValueError(f"{GROUP} is missing {missing}")
    ids = saved["params"]
    n_params = len(optimizer.param_groups[0]["params"])
    if not isinstance(ids, list) or len(ids) != n_params:
        count = len(ids) if isinstance(ids, list) else type(ids).__name__
        raise ValueError(f"{GROUP}['params'] lists {count} parameters, the optimizer has {n_params}")
    state_key = ids[0] if ids else None
    extra = [k for k in saved_state if k != state_key]
    if extra:
        raise ValueError(f"state_dict['state'] has entries for {extra}; the state sits under the first "
                         f"parameter's id ({state_key})")
    options = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
    return Unpacked(options, saved_state.get(state_key), f"state_dict['state'][{state_key}]")


def finish_load(optimizer: torch.optim.Optimizer) -> None:
    """Run torch's load post-hooks (after the new state is installed)."""
    for post_hook in optimizer._optimizer_load_state_dict_post_hooks.values():
        post_hook(optimizer)
