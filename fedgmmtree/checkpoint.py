"""Exact snapshots of the server's state as named arrays, written atomically.

Numpy core: imports no Flower. :func:`to_state_arrays` turns an object graph (the
attributes of a :class:`fedgmmtree.TreeGrower`: its tree, the EM candidates of
every active node, the clients' counts, the history) into named arrays plus one
JSON skeleton; :func:`from_state_arrays` rebuilds it bit for bit. Arrays keep
their dtype and bytes; Python floats travel as JSON, whose ``repr`` round-trips
exactly. Only classes defined in the ``fedgmmtree`` package are rebuilt, so a
checkpoint never runs code of its own (no pickle).

:func:`save_checkpoint` writes a file beside the target, flushes it to disk and
renames it over the target, so a crash leaves either the old checkpoint or the
new one, never half of one.
"""

import importlib
import json
import os
from pathlib import Path

import numpy as np

SKELETON_KEY = "state.skeleton"
FORMAT_KEY = "state.format"
FORMAT_VERSION = 1
PACKAGE = "fedgmmtree"


def _free(name: str, arrays: dict[str, np.ndarray]) -> str:
    """``name``, or ``name`` with underscores added when it is taken."""
    while name in arrays:
        name += "_"
    return name


def _encode(value, name: str, arrays: dict[str, np.ndarray]):
    """JSON-able skeleton of ``value``; its arrays go into ``arrays`` by name."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON cannot tell 1.0 from 1; the tag keeps the type
        return {"$float": value}
    if isinstance(value, bytes):
        key = _free(name, arrays)
        arrays[key] = np.frombuffer(value, dtype=np.uint8).copy()
        return {"$bytes": key}
    if isinstance(value, np.ndarray | np.generic):
        if np.asarray(value).dtype.kind not in "biufcUS":
            raise TypeError(
                f"Cannot checkpoint {name}: arrays of dtype {value.dtype} are not "
                "supported (use numbers or text)."
            )
        key = _free(name, arrays)
        arrays[key] = np.array(value, copy=True)
        return {"$scalar" if isinstance(value, np.generic) else "$array": key}
    if isinstance(value, list | tuple):
        items = [_encode(v, f"{name}.{i}", arrays) for i, v in enumerate(value)]
        return {"$tuple" if isinstance(value, tuple) else "$list": items}
    if isinstance(value, dict):
        return {
            "$dict": [
                [
                    _encode(k, f"{name}.key{i}", arrays),
                    _encode(v, f"{name}.{k}", arrays),
                ]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    cls = type(value)
    if cls.__module__.split(".")[0] == PACKAGE and hasattr(value, "__dict__"):
        fields = {
            attr: _encode(v, f"{name}.{attr}", arrays)
            for attr, v in vars(value).items()
        }
        return {"$object": f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(
        f"Cannot checkpoint {name}: values of type {cls.__module__}.{cls.__qualname__} "
        "are not supported (numbers, text, bytes, arrays, lists, tuples, dicts and "
        f"objects of {PACKAGE} are)."
    )


def _resolve(path: str):
    module_name, qualname = path.split(":")
    if module_name.split(".")[0] != PACKAGE:
        raise ValueError(f"Checkpoint names class {path!r}, outside {PACKAGE}.")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _decode(skeleton, arrays):
    if skeleton is None or isinstance(skeleton, bool | int | str):
        return skeleton
    if "$float" in skeleton:
        return float(skeleton["$float"])
    if "$array" in skeleton:
        return np.array(arrays[skeleton["$array"]], copy=True)
    if "$bytes" in skeleton:
        return np.asarray(arrays[skeleton["$bytes"]], dtype=np.uint8).tobytes()
    if "$scalar" in skeleton:
        return np.asarray(arrays[skeleton["$scalar"]])[()]
    if "$list" in skeleton:
        return [_decode(v, arrays) for v in skeleton["$list"]]
    if "$tuple" in skeleton:
        return tuple(_decode(v, arrays) for v in skeleton["$tuple"])
    if "$dict" in skeleton:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in skeleton["$dict"]}
    cls = _resolve(skeleton["$object"])
    obj = cls.__new__(cls)
    for attr, value in skeleton["fields"].items():
        # object.__setattr__ also fills frozen dataclasses
        object.__setattr__(obj, attr, _decode(value, arrays))
    return obj


def to_state_arrays(value, prefix: str) -> dict[str, np.ndarray]:
    """Named arrays that hold ``value`` exactly.

    Parameters
    ----------
    value : object
        Numbers, text, bytes, None, ndarrays, numpy scalars, lists, tuples,
        dicts and objects of classes defined in ``fedgmmtree``, nested.
    prefix : str
        Start of every array name, e.g. ``"grower"``.

    Returns
    -------
    arrays : dict of str to ndarray
        The arrays by attribute path, plus ``state.skeleton`` (the structure as
        JSON text) and ``state.format``.

    Raises
    ------
    TypeError
        For a value of any other type, naming its path.
    """
    arrays: dict[str, np.ndarray] = {}
    skeleton = _encode(value, prefix, arrays)
    arrays[SKELETON_KEY] = np.array(json.dumps(skeleton, allow_nan=True))
    arrays[FORMAT_KEY] = np.array([FORMAT_VERSION])
    return arrays


def from_state_arrays(arrays: dict[str, np.ndarray]):
    """Inverse of :func:`to_state_arrays`."""
    version = int(np.asarray(arrays[FORMAT_KEY]).reshape(-1)[0])
    if version != FORMAT_VERSION:
        raise ValueError(
            f"Checkpoint format {version} is not supported; this version of "
            f"fedgmmtree reads format {FORMAT_VERSION}."
        )
    skeleton = json.loads(str(np.asarray(arrays[SKELETON_KEY])[()]))
    return _decode(skeleton, arrays)


def save_checkpoint(path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically.

    The arrays go to a temporary file in the same folder, which is flushed to disk
    and then renamed over ``path``: readers see the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)
    return path


def load_checkpoint(path) -> dict[str, np.ndarray] | None:
    """The arrays of the checkpoint at ``path``, or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
