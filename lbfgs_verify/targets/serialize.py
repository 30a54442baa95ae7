"""The default state serializer of steppers: numpy leaves plus a JSON manifest (never pickle).

The blob is ``MAGIC``, an 8-byte little-endian manifest length, the UTF-8 JSON manifest (tree structure as the
template's ``jax.tree_util`` treedef string, each leaf's shape and dtype, the hyperparameters the state was made
with), then the leaves' raw bytes in order. :func:`deserialize` rebuilds the state into the structure of a
*template* (``make(**same hyperparameters).init(params)``) and refuses, naming the leaf, any difference of
structure, shape, dtype or recorded hyperparameters: optax and jaxopt validate nothing on load (a memory_size=10
optax state runs under memory_size=5, jax-and-functional notes in docs/adapters.md), so this check is the guard.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

MAGIC = b"LBFGSV-STATE-1\n"


class StateMismatch(ValueError):
    """A loaded state does not fit its template; the message names the leaf and the difference."""


def _flatten(tree: Any) -> tuple[list[Any], str]:
    try:
        import jax
    except ImportError:  # a numpy stepper: a dict/list/tuple of arrays, flattened here
        return _np_flatten(tree)
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return leaves, str(treedef)


def _np_flatten(tree: Any) -> tuple[list[Any], str]:
    if isinstance(tree, dict):
        out: list[Any] = []
        for key in sorted(tree):
            out.extend(_np_flatten(tree[key])[0])
        return out, f"dict{sorted(tree)}"
    if isinstance(tree, (list, tuple)):
        out = []
        for item in tree:
            out.extend(_np_flatten(item)[0])
        return out, f"{type(tree).__name__}[{len(tree)}]"
    return [tree], "*"


def _unflatten(template: Any, leaves: list[Any]) -> Any:
    try:
        import jax
    except ImportError:
        raise StateMismatch("restoring a state needs jax installed (pip install \"lbfgs-verify[jax]\")") from None
    import jax.numpy as jnp

    treedef = jax.tree_util.tree_structure(template)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaf) for leaf in leaves])


def serialize(state: Any, hyperparameters: Mapping[str, Any] | None = None) -> bytes:
    """``state`` as bytes: a manifest (treedef, shapes, dtypes, hyperparameters) and the raw leaf bytes."""
    leaves, treedef = _flatten(state)
    arrays = [np.array(leaf, order="C", copy=True) for leaf in leaves]
    manifest = {"treedef": treedef, "leaves": [{"shape": list(a.shape), "dtype": a.dtype.str} for a in arrays],
                "hyperparameters": {k: repr(v) for k, v in sorted((hyperparameters or {}).items())}}
    head = json.dumps(manifest, sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack("<Q", len(head)) + head + b"".join(a.tobytes() for a in arrays)


def manifest_of(blob: bytes) -> dict[str, Any]:
    """The manifest of a blob written by :func:`serialize`."""
    if not blob.startswith(MAGIC):
        raise StateMismatch("not a state written by lbfgs_verify.targets.serialize (magic bytes differ)")
    (length,) = struct.unpack("<Q", blob[len(MAGIC):len(MAGIC) + 8])
    return json.loads(blob[len(MAGIC) + 8:len(MAGIC) + 8 + length].decode("utf-8"))


def deserialize(blob: bytes, template: Any, hyperparameters: Mapping[str, Any] | None = None) -> Any:
    """The state in ``blob`` rebuilt into ``template``'s structure; :class:`StateMismatch` when its treedef,
    any leaf's shape or dtype, or (when given) the recorded hyperparameters differ from the template's."""
    manifest = manifest_of(blob)
    offset = len(MAGIC) + 8 + struct.unpack("<Q", blob[len(MAGIC):len(MAGIC) + 8])[0]
    if hyperparameters is not None:
        now = {k: repr(v) for k, v in sorted(hyperparameters.items())}
        if now != manifest["hyperparameters"]:
            raise StateMismatch(f"state saved with hyperparameters {manifest['hyperparameters']}, loaded under {now}")
    leaves, treedef = _flatten(template)
    if treedef != manifest["treedef"]:
        raise StateMismatch(f"tree structure differs: saved {manifest['treedef']}, template {treedef}")
    out = []
    for index, (leaf, meta) in enumerate(zip(leaves, manifest["leaves"], strict=True)):
        want = np.asarray(leaf)
        if list(want.shape) != meta["shape"] or want.dtype.str != meta["dtype"]:
            raise StateMismatch(f"leaf {index}: saved {meta['dtype']}{tuple(meta['shape'])}, template "
                                f"{want.dtype.str}{want.shape}")
        size = int(np.prod(meta["shape"], dtype=np.int64)) * want.dtype.itemsize
        out.append(np.frombuffer(blob[offset:offset + size], dtype=want.dtype).reshape(want.shape).copy())
        offset += size
    if offset != len(blob):
        raise StateMismatch(f"{len(blob) - offset} trailing bytes after the last leaf")
    if "PyTreeDef" in treedef:
        return _unflatten(template, out)
    return _np_unflatten(template, iter(out))


def _np_unflatten(template: Any, leaves: Any) -> Any:
    if isinstance(template, dict):
        return {key: _np_unflatten(template[key], leaves) for key in sorted(template)}
    if isinstance(template, (list, tuple)):
        return type(template)(_np_unflatten(item, leaves) for item in template)
    return next(leaves)
