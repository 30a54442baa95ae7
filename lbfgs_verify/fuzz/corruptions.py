"""Corruption classes: named ways of damaging a saved state_dict (or its serialized bytes).

The target's state format is opaque: every class finds its sites by walking the saved dict (mappings,
lists, tensors, numbers), never by torch's key names. The only names used are those of torch.optim's public
state_dict envelope (``state``, ``param_groups``, ``params``: torch/optim/optimizer.py, the interface every
target shares) and the target's names for torch.optim.LBFGS's options (:class:`Context`). A corruption is only
what the optimizer could never have produced itself (:data:`_BAD_OPTIONS`, :func:`_counted`; issue 8's load
policy). Each corruption returns an :class:`Applied`: the damaged value, how it
is delivered (the dict in memory, or bytes through ``torch.load(weights_only=True)``), a description naming
the key, and Python statements that redo it in a standalone reproduction (:mod:`lbfgs_verify.engine.repro`).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from lbfgs_verify.engine.runs import torch_save_bytes
from lbfgs_verify.targets.load import TORCH_LBFGS_OPTIONS

Path = tuple[Any, ...]
Draw = Callable[[st.SearchStrategy[Any]], Any]
OptionNames = Mapping[str, str]
"""torch.optim.LBFGS's option names -> the target's names for them in its saved param_groups (absent: the target
has no counterpart); see :func:`lbfgs_verify.targets.load.option_names`."""
TORCH_OPTION_NAMES: OptionNames = {name: name for name in TORCH_LBFGS_OPTIONS}


@dataclass(frozen=True)
class Context:
    """What a corruption may know besides the saved dict.

    Attributes:
        option_names: under which names the target saves torch.optim.LBFGS's options.
        run_states: the state_dicts the run saved after each step up to the one damaged (the last); an integer
            that counted across them is a counter (an integer that only stayed put, like ``t = lr``, may be a
            float in another run, so a fraction there is no corruption).
    """

    option_names: OptionNames = field(default_factory=lambda: dict(TORCH_OPTION_NAMES))
    run_states: tuple[Any, ...] = ()


DEFAULT_CONTEXT = Context()


@dataclass
class Applied:
    """One corruption as applied.

    Attributes:
        corrupted: the damaged state_dict (``delivery == "dict"``) or serialized bytes (``"bytes"``).
        delivery: ``"dict"`` (handed to ``load_state_dict`` in memory) or ``"bytes"`` (through
            ``torch.load(io.BytesIO(data), weights_only=True)`` first).
        description: what was done, naming the key.
        key: the innermost key or index touched (a rejection or warning should name it).
        code: statements redoing it on ``saved`` (the state_dict) or ``data`` (its bytes) in a reproduction.
        hostile_token: for ``hostile-pickle``, the token the payload records if it ever runs.
    """

    corrupted: Any
    delivery: str
    description: str
    key: str
    code: list[str] = field(default_factory=list)
    hostile_token: str | None = None


@dataclass(frozen=True)
class Corruption:
    """A named corruption class: ``apply(saved, draw, context) -> Applied | None`` (``None``: nowhere to apply
    it); ``context`` (:class:`Context`) says what is known of the target besides ``saved``."""

    name: str
    description: str
    apply: Callable[[dict[str, Any], Draw, Context], Applied | None]


# --------------------------------------------------------------------------------------------------------
# Walking an opaque state_dict
# --------------------------------------------------------------------------------------------------------


def accessor(path: Path, root: str = "saved") -> str:
    """``saved['state'][0]['d']`` for ``("state", 0, "d")``."""
    return root + "".join(f"[{key!r}]" for key in path)


def key_name(path: Path) -> str:
    return str(path[-1]) if path else "state_dict"


def get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every nested node below ``value`` (mapping values and list items) with its path, parents first."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield (*path, key), item
            yield from walk(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield (*path, index), item
            yield from walk(item, (*path, index))


def _in_state(path: Path) -> bool:
    return len(path) >= 2 and path[0] == "state"


def _pick(draw: Draw, sites: list[tuple[Path, Any]]) -> tuple[Path, Any] | None:
    if not sites:
        return None
    return sites[draw(st.integers(0, len(sites) - 1))]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _literal(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


# --------------------------------------------------------------------------------------------------------
# The classes
# --------------------------------------------------------------------------------------------------------


def _missing_key(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    # A parameter without an entry in ``state`` is legitimate (it has no state yet: torch/optim/optimizer.py),
    # so whole per-parameter entries are not deleted; keys inside them and everywhere else are.
    sites = [(p, v) for p, v in walk(saved) if (isinstance(get(saved, p[:-1]), Mapping) and len(p) != 2)
             or (len(p) == 2 and p[0] != "state")]
    site = _pick(draw, sites)
    if site is None:
        return None
    path = site[0]
    del get(saved, path[:-1])[path[-1]]
    return Applied(saved, "dict", f"deleted {accessor(path)}", key_name(path), [f"del {accessor(path)}"])


_EXTRA_VALUES: tuple[tuple[str, Any], ...] = (("torch.zeros(3)", None), ("7", 7), ("[1.0, 2.0]", [1.0, 2.0]))


def _extra_key(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    if not isinstance(saved.get("state"), Mapping):
        return None
    mappings = [(("state",), saved["state"])] + [(p, v) for p, v in walk(saved) if _in_state(p)
                                                  and isinstance(v, Mapping)]
    path, mapping = mappings[draw(st.integers(0, len(mappings) - 1))]
    source, value = _EXTRA_VALUES[draw(st.integers(0, len(_EXTRA_VALUES) - 1))]
    mapping["unexpected_entry"] = torch.zeros(3) if value is None else value
    target = (*path, "unexpected_entry")
    return Applied(saved, "dict", f"added {accessor(target)} = {source}", "unexpected_entry",
                   [f"{accessor(target)} = {source}"])


def _wrong_type(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    sites = [(p, v) for p, v in walk(saved) if _in_state(p)
             and (isinstance(v, (Tensor, float, list)) or _is_int(v))]
    site = _pick(draw, sites)
    if site is None:
        return None
    path, value = site
    if isinstance(value, Tensor) and value.dim() > 0:
        new, code = value.tolist(), f"{accessor(path)}.tolist()"
    elif isinstance(value, (Tensor, float)) or _is_int(value):
        number = value.item() if isinstance(value, Tensor) else value
        new, code = str(number), f"str({_literal(number)})"
    else:
        new, code = dict(enumerate(value)), f"dict(enumerate({accessor(path)}))"
    get(saved, path[:-1])[path[-1]] = new
    return Applied(saved, "dict", f"{accessor(path)}: {type(value).__name__} replaced by {type(new).__name__}",
                   key_name(path), [f"{accessor(path)} = {code}"])


def _wrong_size(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    sites = [(p, v) for p, v in walk(saved) if _in_state(p) and isinstance(v, Tensor) and v.dim() >= 1]
    site = _pick(draw, sites)
    if site is None:
        return None
    path, value = site
    modes = ["grow", "reshape"] + (["shrink"] if value.shape[0] >= 2 else [])
    mode = draw(st.sampled_from(modes))
    if mode == "grow":
        new = torch.cat([value, value[:1]])
        code = f"torch.cat([{accessor(path)}, {accessor(path)}[:1]])"
    elif mode == "shrink":
        new, code = value[:-1].clone(), f"{accessor(path)}[:-1].clone()"
    else:
        new, code = value.unsqueeze(-1).clone(), f"{accessor(path)}.unsqueeze(-1).clone()"
    get(saved, path[:-1])[path[-1]] = new
    return Applied(saved, "dict", f"{accessor(path)}: shape {tuple(value.shape)} -> {tuple(new.shape)}",
                   key_name(path), [f"{accessor(path)} = {code}"])


def _wrong_dtype(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    sites = [(p, v) for p, v in walk(saved) if _in_state(p) and isinstance(v, Tensor) and v.numel() >= 1]
    site = _pick(draw, sites)
    if site is None:
        return None
    path, value = site
    if value.is_floating_point() or value.is_complex():
        dtype = draw(st.sampled_from((torch.int64, torch.int32)))
        source = value.real if value.is_complex() else value
        new = source.to(dtype)
        code = f"{accessor(path)}{'.real' if value.is_complex() else ''}.to({dtype})"
    else:
        dtype = torch.float64
        new, code = value.to(dtype), f"{accessor(path)}.to({dtype})"
    get(saved, path[:-1])[path[-1]] = new
    return Applied(saved, "dict", f"{accessor(path)}: dtype {value.dtype} -> {dtype}", key_name(path),
                   [f"{accessor(path)} = {code}"])


def _non_finite(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    sites = [(p, v) for p, v in walk(saved) if _in_state(p) and (
        (isinstance(v, Tensor) and v.is_floating_point() and v.numel() >= 1 and bool(torch.isfinite(v).all()))
        or (isinstance(v, float) and math.isfinite(v)))]
    site = _pick(draw, sites)
    if site is None:
        return None
    path, value = site
    bad = draw(st.sampled_from((math.nan, math.inf, -math.inf)))
    if isinstance(value, Tensor):
        index = draw(st.integers(0, value.numel() - 1))
        new = value.detach().clone()
        new.view(-1)[index] = bad
        get(saved, path[:-1])[path[-1]] = new
        code = [f"{accessor(path)} = {accessor(path)}.clone()", f"{accessor(path)}.view(-1)[{index}] = {_literal(bad)}"]
        where = f"{accessor(path)} element {index}"
    else:
        get(saved, path[:-1])[path[-1]] = bad
        code, where = [f"{accessor(path)} = {_literal(bad)}"], accessor(path)
    return Applied(saved, "dict", f"{where} set to {bad} (the saved state was finite there)", key_name(path), code)


def _parallel_groups(saved: dict[str, Any]) -> list[list[Path]]:
    """Sequences that hold one entry per stored pair: lists of equal length >= 1 in the same mapping, or
    tensors of dim >= 2 (stacked histories) with the tensors of the same mapping sharing their leading size."""
    groups: list[list[Path]] = []
    for path, mapping in [(("state",), saved.get("state")), *list(walk(saved))]:
        if not (path and path[0] == "state" and isinstance(mapping, Mapping)):
            continue
        by_length: dict[tuple[str, int], list[Path]] = {}
        stacked_lengths = {v.shape[0] for v in mapping.values() if isinstance(v, Tensor) and v.dim() >= 2}
        for key, value in mapping.items():
            if isinstance(value, list) and value:
                by_length.setdefault(("list", len(value)), []).append((*path, key))
            elif isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] in stacked_lengths:
                by_length.setdefault(("tensor", value.shape[0]), []).append((*path, key))
        groups.extend(paths for paths in by_length.values() if len(paths) >= 2)
    return groups


def _history_inconsistent(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    groups = _parallel_groups(saved)
    if not groups:
        return None
    group = groups[draw(st.integers(0, len(groups) - 1))]
    path = group[draw(st.integers(0, len(group) - 1))]
    value = get(saved, path)
    get(saved, path[:-1])[path[-1]] = value[:-1]
    others = ", ".join(key_name(p) for p in group if p != path)
    return Applied(saved, "dict", f"{accessor(path)} shortened to {len(value) - 1} (parallel to {others})",
                   key_name(path), [f"{accessor(path)} = {accessor(path)}[:-1]"])


def _history_too_long(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    groups_saved = saved.get("param_groups")
    if not (isinstance(groups_saved, list) and groups_saved and isinstance(groups_saved[0], Mapping)):
        return None
    history_key = context.option_names.get("history_size")
    history_size = groups_saved[0].get(history_key) if history_key is not None else None
    groups = _parallel_groups(saved)
    if not _is_int(history_size) or not groups:
        return None
    group = groups[draw(st.integers(0, len(groups) - 1))]
    code = []
    for path in group:
        value = get(saved, path)
        extra = history_size + 1 - len(value)
        if extra <= 0:
            continue
        if isinstance(value, Tensor):
            new = torch.cat([value] + [value[-1:]] * extra)
            code.append(f"{accessor(path)} = torch.cat([{accessor(path)}] + [{accessor(path)}[-1:]] * {extra})")
        else:
            new = value + [value[-1]] * extra
            code.append(f"{accessor(path)} = {accessor(path)} + [{accessor(path)}[-1]] * {extra}")
        get(saved, path[:-1])[path[-1]] = new
    if not code:
        return None
    extended = ", ".join(key_name(p) for p in group)
    return Applied(saved, "dict", f"{extended} extended to {history_size + 1} entries ({history_key} is "
                   f"{history_size})", key_name(group[0]), code)


def _bad_counter(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    sites = [(p, v) for p, v in walk(saved) if _in_state(p) and (
        _is_int(v) or (isinstance(v, Tensor) and v.dim() == 0 and not v.is_floating_point() and not v.is_complex()))]
    site = _pick(draw, sites)
    if site is None:
        return None
    path, value = site
    number = int(value.item()) if isinstance(value, Tensor) else value
    bad = draw(st.sampled_from((-1 - number, number + 0.5) if _counted(path, context.run_states) else (-1 - number,)))
    get(saved, path[:-1])[path[-1]] = bad
    return Applied(saved, "dict", f"{accessor(path)}: {number} -> {bad}", key_name(path),
                   [f"{accessor(path)} = {bad!r}"])


def _counted(path: Path, run_states: tuple[Any, ...]) -> bool:
    """The entry at ``path`` is an integer in every run state that has it and took more than one value."""
    values = []
    for state in run_states:
        try:
            value = get(state, path)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, Tensor):
            if value.dim() != 0 or value.is_floating_point() or value.is_complex():
                return False
            value = int(value.item())
        elif not _is_int(value):
            return False
        values.append(value)
    return len(set(values)) > 1 or not run_states


_BAD_OPTIONS: tuple[tuple[str, Any], ...] = (("lr", -1.0), ("history_size", 0), ("history_size", -1),
                                            ("line_search_fn", "no_such_line_search"))
"""Hyperparameter values no L-BFGS can run with, so no optimizer's own state_dict holds them: a negative step
length, no room for a curvature pair (Nocedal & Wright §7.2 needs m >= 1), an unknown line search. Values torch's
constructor accepts and runs with (``max_iter`` 0 or negative: no iteration) are not corruptions."""


def _param_groups_mismatch(saved: dict[str, Any], draw: Draw,
                           context: Context = DEFAULT_CONTEXT) -> Applied | None:
    groups = saved.get("param_groups")
    if not (isinstance(groups, list) and groups and isinstance(groups[0], Mapping)):
        return None
    group = groups[0]
    ids = group.get("params")
    variants = ["count"] + [f"option:{k}" for k, _ in _BAD_OPTIONS if context.option_names.get(k) in group]
    if isinstance(ids, list) and ids:
        # Renumbered ids are harmless while no parameter has state (torch matches groups by position; the ids
        # only key ``state``): a corruption only where a state entry then belongs to no listed parameter.
        renumbered = ["ids-renumbered"] if saved.get("state") else []
        variants += ["ids-extra", *renumbered] + (["ids-dropped"] if len(ids) >= 2 else [])
    variant = draw(st.sampled_from(variants))
    if variant == "count":
        import copy

        second = copy.deepcopy(group)
        if isinstance(ids, list):
            second["params"] = [1000 + i for i in range(len(ids))]
        groups.append(second)
        code = ["saved['param_groups'].append(copy.deepcopy(saved['param_groups'][0]))",
                "ids = saved['param_groups'][1]['params']",
                "saved['param_groups'][1]['params'] = [1000 + i for i, _ in enumerate(ids)]"]
        return Applied(saved, "dict", "a second parameter group added", "param_groups", code)
    if variant.startswith("option:"):
        torch_key = variant.removeprefix("option:")
        key = context.option_names[torch_key]
        bad = draw(st.sampled_from([v for k, v in _BAD_OPTIONS if k == torch_key]))
        group[key] = bad
        return Applied(saved, "dict", f"saved['param_groups'][0][{key!r}] = {bad!r}", key,
                       [f"saved['param_groups'][0][{key!r}] = {bad!r}"])
    if variant == "ids-extra":
        group["params"] = [*ids, max(ids) + 1]
        code = "saved['param_groups'][0]['params'].append(max(saved['param_groups'][0]['params']) + 1)"
        return Applied(saved, "dict", f"params ids {ids} -> {group['params']}", "params", [code])
    if variant == "ids-dropped":
        group["params"] = ids[:-1]
        code = "saved['param_groups'][0]['params'] = saved['param_groups'][0]['params'][:-1]"
        return Applied(saved, "dict", f"params ids {ids} -> {group['params']}", "params", [code])
    group["params"] = [i + 100 for i in ids]
    code = "saved['param_groups'][0]['params'] = [i + 100 for i in saved['param_groups'][0]['params']]"
    return Applied(saved, "dict", f"params ids {ids} -> {group['params']}", "params", [code])


def _truncated_file(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    data = torch_save_bytes(saved)
    keep = draw(st.integers(0, len(data) - 1))
    return Applied(data[:keep], "bytes", f"the torch.save file cut to {keep} of {len(data)} bytes", "file",
                   [f"data = data[:{keep}]"])


def _bit_flip(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    data = bytearray(torch_save_bytes(saved))
    position = draw(st.integers(0, len(data) - 1))
    bit = draw(st.integers(0, 7))
    data[position] ^= 1 << bit
    return Applied(bytes(data), "bytes", f"bit {bit} of byte {position} (of {len(data)}) flipped in the torch.save "
                   "file", "file", [f"data = bytearray(data); data[{position}] ^= {1 << bit}; data = bytes(data)"])


HOSTILE_RUNS: set[str] = set()
"""Tokens of hostile payloads that ran (a correct loader never lets one run)."""


def hostile_payload_ran(token: str, value: Any) -> Any:
    """What a hostile pickle calls when unpickled: records ``token`` (a harmless stand-in for arbitrary code)."""
    HOSTILE_RUNS.add(token)
    return value


class _Hostile:
    """Unpickles as ``hostile_payload_ran(token, value)``: code runs during unpickling."""

    def __init__(self, token: str, value: Any) -> None:
        self.token, self.value = token, value

    def __reduce__(self) -> tuple[Any, ...]:
        return (hostile_payload_ran, (self.token, self.value))


_TOKENS = iter(range(1, 2**62))


def _hostile_pickle(saved: dict[str, Any], draw: Draw, context: Context = DEFAULT_CONTEXT) -> Applied | None:
    token = f"hostile-{next(_TOKENS)}"
    blobs = [(p, v) for p, v in walk(saved) if isinstance(v, (bytes, bytearray))]
    if blobs and draw(st.booleans()):
        # The target's own state holds serialized bytes: replace one blob by a payload it would have to unpickle.
        path, value = blobs[draw(st.integers(0, len(blobs) - 1))]
        get(saved, path[:-1])[path[-1]] = pickle.dumps(_Hostile(token, pickle.loads(value)))
        return Applied(saved, "dict", f"{accessor(path)} replaced by a pickle that runs code when unpickled",
                       key_name(path), [f"{accessor(path)} = pickle.dumps(Payload())"], hostile_token=token)
    key = "param_groups" if "param_groups" in saved else next(iter(saved), None)
    if key is None:
        return None
    wrapped = {**saved, key: _Hostile(token, saved[key])}
    return Applied(torch_save_bytes(wrapped), "bytes",
                   f"saved[{key!r}] wrapped in an object whose unpickling runs code, then torch.save", str(key),
                   [f"data = save_bytes({{**saved, {key!r}: Payload({accessor((key,))})}})"], hostile_token=token)


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("missing-key", "a key deleted anywhere in the state_dict", _missing_key),
    Corruption("extra-key", "an unknown entry added to the optimizer state", _extra_key),
    Corruption("wrong-type", "a state entry replaced by a value of another type", _wrong_type),
    Corruption("wrong-size", "a state tensor of another shape or flat size", _wrong_size),
    Corruption("wrong-dtype", "a state tensor of a non-floating dtype (or an integer one made floating)", _wrong_dtype),
    Corruption("non-finite", "NaN or inf written where the saved state was finite", _non_finite),
    Corruption("history-inconsistent", "one of the parallel history sequences shorter than the others",
               _history_inconsistent),
    Corruption("history-too-long", "more history pairs than param_groups[0]['history_size']", _history_too_long),
    Corruption("bad-counter", "an integer of the state made negative or non-integer", _bad_counter),
    Corruption("param-groups-mismatch", "a second group, an invalid hyperparameter, or other params ids",
               _param_groups_mismatch),
    Corruption("truncated-file", "the torch.save bytes cut short", _truncated_file),
    Corruption("bit-flip", "one bit flipped in the torch.save bytes", _bit_flip),
    Corruption("hostile-pickle", "a payload that runs code when unpickled", _hostile_pickle),
)}
"""Every corruption class of ``lbfgs-verify fuzz``, by interface name."""
