"""The ``state_dict`` envelope shared by the reference optimizers: packing, hooks and the outer checks.

Both references keep all their state under the first parameter's id, like ``torch.optim.LBFGS``
(``torch/optim/optimizer.py::Optimizer.state_dict`` / ``load_state_dict``). This module checks everything around
that inner state (groups, parameter counts, where the state sits) and runs torch's optimizer hooks; each
optimizer validates its own inner state and options.

The load policy shared by the references (and what differs from torch's unchecked load):

- a state the optimizer itself produced always loads; non-finite values (a diverged run) load with a
  ``RuntimeWarning`` naming the keys (:func:`warn_non_finite`);
- unknown top-level keys (a state_dict post-hook's notes) are ignored and entries of ``state`` that belong to no
  parameter are carried over, as torch does;
- every real corruption raises ``ValueError``/``TypeError`` naming the key, and the optimizer is left unchanged;
- nothing loaded shares storage with the given dict, and a returned ``state_dict()`` is a snapshot.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

GROUP = "state_dict['param_groups'][0]"


def warn_non_finite(where: str, keys: Sequence[str], *, stacklevel: int = 3) -> None:
    """The load policy for non-finite values: load them (torch does; a diverged run saves them) and say so."""
    if keys:
        warnings.warn(f"{where}: loading non-finite values (NaN or inf) in {list(keys)}, as a diverged run leaves "
                      "them; the next step() continues from them as torch.optim would", RuntimeWarning,
                      stacklevel=stacklevel + 1)


def snapshot_state_dict(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``torch.optim.Optimizer.state_dict`` (hooks, parameter ids, ``param_names``, entries that belong to no
    parameter), deep-copied: later steps never change a returned dict (torch returns live objects)."""
    return copy.deepcopy(torch.optim.Optimizer.state_dict(optimizer))


ValidateState = Callable[[Any, list[Tensor], str, Mapping[str, Any]], dict[str, Any]]
CheckGroup = Callable[[dict[str, Any], str], None]


def _envelope(optimizer: torch.optim.Optimizer, state_dict: Any) -> tuple[dict[str, Any], Mapping[Any, Any]]:
    """torch's load pre-hooks on a shallow copy, then the outer checks: a dict with a ``state`` dict and a
    ``param_groups`` entry; returns ``(the copy, its state)``. Raises ``TypeError``/``ValueError`` naming the key."""
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
    saved_state = state_dict["state"]
    if not isinstance(saved_state, Mapping):
        raise TypeError(f"state_dict['state'] must be a dict, got {type(saved_state).__name__}")
    return state_dict, saved_state


def load_like_torch(optimizer: torch.optim.Optimizer, state_dict: Any, *, check_group: CheckGroup,
                    validate_state: ValidateState) -> None:
    """``torch.optim.Optimizer.load_state_dict``'s semantics, checked and all or nothing.

    As torch: load pre-hooks on a shallow copy, groups matched by position and parameters by order, options
    taken from the saved groups, ``param_names`` kept from the current group when the saved one has none,
    entries under other parameters cast to that parameter's dtype and device, entries that belong to no
    parameter carried, unknown top-level keys ignored, post-hooks after. Unlike torch: ``check_group(group,
    where)`` checks every saved group, ``validate_state(saved, params, where, group)`` checks the state under the
    first parameter against the (checked) saved group it will run with, and returns what to install; anything
    wrong raises naming the key, before anything changes; and nothing installed aliases ``state_dict``.
    """
    state_dict, saved_state = _envelope(optimizer, state_dict)
    groups = optimizer.param_groups
    saved_groups = state_dict["param_groups"]
    if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
        raise TypeError("state_dict['param_groups'] must be a list of dicts")
    if len(saved_groups) != len(groups):
        raise ValueError(f"state_dict['param_groups'] holds {len(saved_groups)} parameter groups, the optimizer has "
                         f"{len(groups)}")
    new_groups = []
    for index, (group, saved) in enumerate(zip(groups, saved_groups, strict=True)):
        where = f"state_dict['param_groups'][{index}]"
        ids = saved.get("params")
        if not isinstance(ids, list):
            raise ValueError(f"{where}['params'] must be a list of parameter ids, got {type(ids).__name__}")
        if len(ids) != len(group["params"]):
            raise ValueError(f"{where}['params'] lists {len(ids)} parameters, the optimizer's group has "
                             f"{len(group['params'])}")
        new_group = copy.deepcopy({k: v for k, v in saved.items() if k != "params"})
        check_group(new_group, where)
        new_group["params"] = group["params"]
        if "param_names" in group and "param_names" not in new_group:
            new_group["param_names"] = group["param_names"]
        new_groups.append(new_group)
    saved_ids = [i for g in saved_groups for i in g["params"]]
    id_map = dict(zip(saved_ids, (p for g in groups for p in g["params"]), strict=True))
    first_id = saved_groups[0]["params"][0] if saved_groups and saved_groups[0]["params"] else None
    new_state: defaultdict[Any, Any] = defaultdict(dict)
    for key, value in saved_state.items():
        where = f"state_dict['state'][{key!r}]"
        if key == first_id:
            new_state[id_map[key]] = validate_state(value, list(groups[0]["params"]), where, new_groups[0])
        elif key in id_map:
            new_state[id_map[key]] = _cast_like_torch(id_map[key], copy.deepcopy(value))
        elif isinstance(value, Mapping) and ("func_evals" in value or "n_iter" in value):
            raise ValueError(f"{where} holds an optimizer state but {key!r} is none of the saved parameter ids "
                             f"{saved_ids}; the state belongs under the first one ({first_id!r})")
        else:
            new_state[key] = copy.deepcopy(value)
    optimizer.__setstate__({"state": new_state, "param_groups": new_groups})
    finish_load(optimizer)


def _cast_like_torch(param: Tensor, value: Any, key: Any = None) -> Any:
    """torch's ``_process_value_according_to_param_policy`` applied through dicts and lists (a copy)."""
    if isinstance(value, Tensor):
        if key != "step" and param.is_floating_point():
            return value.to(dtype=param.dtype, device=param.device, copy=True)
        return value.to(device=param.device, copy=True)
    if isinstance(value, dict):
        return {k: _cast_like_torch(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_like_torch(param, v) for v in value)
    return value


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
    # unknown top-level keys (a state_dict post-hook's notes) are ignored, as torch ignores them
    state_dict, saved_state = _envelope(optimizer, state_dict)
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
