"""Read scaling-crl / JaxGCRL pickles without running the code a pickle may name.

Plain `pickle` calls whatever global a file names, so a checkpoint from the internet could run
`os.system`. These files only need array, scalar and dtype reconstructors, so `find_class` answers
from a fixed table of (module, name) pairs, each mapped to a stand-in written here that accepts
only numeric data, and refuses everything else before importing anything. jax's reconstructor is
never called: jax 0.4.23 pickles carry a `named_shape` that current jax rejects, and the numpy
state inside them is all a frozen teacher needs.

Trees saved after `jax.device_get` hold numpy arrays and numpy scalars instead of jax arrays; under
pickle protocol 5 numpy writes arrays through `_frombuffer`, under protocol 2 their bytes through
`_codecs.encode(text, "latin1")`. All of these load; numpy scalars come back as 0-d arrays, which is
how every consumer of a parameter tree treats them.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO, Self

import numpy as np

from distill.errors import DistillError

_NUMERIC_KINDS = frozenset("biufc")


def _empty_array(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """Stands in for numpy's `multiarray._reconstruct`: an empty ndarray that BUILD then fills."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(
            f"array reconstructor called with {subtype!r} instead of numpy.ndarray"
        )
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """numpy.dtype limited to a type-code string, as array pickles write it (`dtype('f4', False, True)`)."""
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise pickle.UnpicklingError(f"unexpected dtype arguments {spec!r}, {align!r}, {copy!r}")
    dtype = np.dtype(spec, align, copy)
    if dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"dtype {spec!r} is not numeric")
    return dtype


def _numeric_dtype(dtype: Any, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise pickle.UnpicklingError(f"{what} dtype {dtype!r} is not a plain numeric dtype")
    return dtype


def _array_from_bytes(raw: Any, dtype: Any, shape: Any, fortran: bool) -> np.ndarray:
    """A C-ordered copy of `raw` read as a numeric array of `shape`, after checking every part."""
    dtype = _numeric_dtype(dtype, "array")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("array data is not raw bytes")
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) != size * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"array of shape {shape} needs {size * dtype.itemsize} bytes, has {len(raw)}"
        )
    flat = np.frombuffer(raw, dtype=dtype, count=size)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="C")


def _array_from_state(fun: Any, args: Any, arr_state: Any, aval_state: Any = None) -> np.ndarray:
    """Replaces `jax._src.array._reconstruct_array`: rebuilds the numpy array from its pickled state
    (version, shape, dtype, fortran order, raw bytes) and ignores jax's abstract-value state."""
    if fun is not _empty_array or not isinstance(args, tuple):
        raise pickle.UnpicklingError("jax array state does not hold a numpy array")
    if not (isinstance(arr_state, tuple) and len(arr_state) == 5):
        raise pickle.UnpicklingError(
            "jax array state is not (version, shape, dtype, fortran, data)"
        )
    _, shape, dtype, fortran, raw = arr_state
    return _array_from_bytes(raw, dtype, shape, bool(fortran))


def _from_buffer(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stands in for numpy's `numeric._frombuffer(buffer, dtype, shape, order)` (protocol 5)."""
    if order not in ("C", "F"):
        raise pickle.UnpicklingError(f"array order {order!r} is not 'C' or 'F'")
    return _array_from_bytes(raw, dtype, shape, order == "F")


def _scalar(dtype: Any, raw: Any = None) -> np.ndarray:
    """Stands in for numpy's `multiarray.scalar(dtype, bytes)`: the value as a 0-d array."""
    return _array_from_bytes(raw, _numeric_dtype(dtype, "scalar"), (), False)


def _latin1_bytes(text: Any, encoding: Any) -> bytes:
    """Stands in for `_codecs.encode(text, "latin1")`, how protocol 2 writes bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as text.encode('latin1')")
    return text.encode("latin1")


ALLOWED: dict[tuple[str, str], Any] = {
    ("jax._src.array", "_reconstruct_array"): _array_from_state,
    ("numpy.core.multiarray", "_reconstruct"): _empty_array,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _from_buffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class AllowListUnpickler(pickle.Unpickler):
    """An Unpickler whose globals come only from `ALLOWED`; nothing else is imported or called."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED)
            raise DistillError(
                f"{self.source}: refused to load: the pickle references {module}.{name}, which could run "
                f"code; only array and scalar reconstructors are allowed ({allowed}) — is this really a "
                "scaling-crl / JaxGCRL checkpoint?"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DistillError(
            f"{self.source}: refused to load: the pickle uses persistent ids, which checkpoints never do"
        )


def _check_tree(obj: Any, where: str, source: str) -> None:
    """What came out must be dicts / tuples / lists of numeric ndarrays, nothing else."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise DistillError(
                    f"{source}: not a parameter tree: key {key!r} under {where or 'the root'} is not a string"
                )
            _check_tree(value, f"{where}/{key}", source)
    elif isinstance(obj, (tuple, list)):
        for i, value in enumerate(obj):
            _check_tree(value, f"{where}[{i}]", source)
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise DistillError(f"{source}: array {where} has non-numeric dtype {obj.dtype}")
    else:
        raise DistillError(
            f"{source}: not a parameter tree: {where or 'the root'} is a {type(obj).__name__}"
        )


def safe_load(file: BinaryIO, source: str) -> Any:
    """Unpickles a parameter tree from `file`; any refusal or damage is a one-line DistillError."""
    try:
        obj = AllowListUnpickler(file, source).load()
    except DistillError:
        raise
    except (pickle.UnpicklingError, EOFError) as exc:
        raise DistillError(
            f"{source}: not a readable checkpoint pickle ({_one_line(exc) or 'truncated'})"
        ) from None
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        MemoryError,
    ) as exc:
        raise DistillError(
            f"{source}: damaged checkpoint pickle ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    _check_tree(obj, "", source)
    return obj


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    return safe_load(io.BytesIO(data), source)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


# --- scaling-crl's args.pkl ------------------------------------------------------------------------
ARGS_GLOBALS = frozenset({("__main__", "Args"), ("train", "Args")})
"""Where scaling-crl's `Args` dataclass can live when `train.py` pickles it: run as a script
(`__main__`) or imported as a module (`train`)."""
ARGS_SCALARS = frozenset({
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype"),
})
"""Numpy scalars (some fields are computed with numpy), rebuilt by the checked stand-ins above."""
_PLAIN = (str, int, float, bool, type(None))


class ArgsRecord:
    """Stands in for scaling-crl's `Args`: the pickle's NEWOBJ makes an empty one (no argument is
    accepted) and BUILD hands it the field dict, which must be plain data. No code of the original
    class exists here, so none can run."""

    def __new__(cls, *args: Any) -> Self:
        if args:
            raise pickle.UnpicklingError("Args was rebuilt with constructor arguments; args.pkl never does that")
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise pickle.UnpicklingError("Args was called with arguments; args.pkl never does that")
        self.fields: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("Args state is not a dict of fields")
        fields = {}
        for key, value in state.items():
            if not isinstance(key, str):
                raise pickle.UnpicklingError(f"Args field name {key!r} is not a string")
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value.item()  # a numpy scalar (train.py computes some fields with numpy)
            fields[key] = value
            plain = isinstance(value, _PLAIN) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value)
            )
            if not plain:
                raise pickle.UnpicklingError(
                    f"Args field {key!r} holds a {type(value).__name__}, not plain data"
                )
        self.fields = fields


class ArgsUnpickler(pickle.Unpickler):
    """Reads scaling-crl's `args.pkl`: the only global it may name is `Args`, mapped to
    `ArgsRecord`; anything else is refused before it is imported."""

    def __init__(self, file: BinaryIO, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ARGS_GLOBALS:
            return ArgsRecord
        if (module, name) in ARGS_SCALARS:
            return ALLOWED[(module, name)]
        raise DistillError(
            f"{self.source}: refused to load: the pickle references {module}.{name}, which could run code; "
            "scaling-crl's args.pkl names only its Args dataclass and numpy scalars — is this really a "
            "scaling-crl run folder?"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DistillError(f"{self.source}: refused to load: the pickle uses persistent ids, which args.pkl never does")


def safe_load_args(file: BinaryIO, source: str) -> dict[str, Any]:
    """The fields of a pickled scaling-crl `Args`, as plain data; any refusal is one line."""
    try:
        obj = ArgsUnpickler(file, source).load()
    except DistillError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, OverflowError, MemoryError) as exc:
        raise DistillError(f"{source}: not a readable args.pkl ({_one_line(exc) or 'truncated'})") from None
    if not isinstance(obj, ArgsRecord):
        raise DistillError(f"{source}: not a scaling-crl args.pkl: it holds a {type(obj).__name__}, not Args")
    return dict(obj.fields)
