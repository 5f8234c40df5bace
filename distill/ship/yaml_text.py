"""A small YAML writer for plain data (mappings, sequences, str, int, float, bool, None).

PyYAML is not a dependency, and deploy files hold nothing more than plain data. Mappings and
sequences of containers are written in block style, sequences of scalars in flow style
(`[0.0, 0.9, -1.8]`). A string is written bare only when no YAML 1.1 or 1.2 reader can take it
for anything else; otherwise it is double-quoted with JSON's escapes, which YAML reads the same.
Floats always carry a '.' before any exponent, because YAML 1.1 readers (PyYAML) read `1e-05`
as a string.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


def _string(s: str) -> str:
    if _BARE.match(s) and s.lower() not in _RESERVED and not s.lower().startswith((".", "0x")):
        return s
    return json.dumps(s, ensure_ascii=False)


def _float(x: float) -> str:
    if math.isnan(x):
        return ".nan"
    if math.isinf(x):
        return ".inf" if x > 0 else "-.inf"
    text = repr(x)
    mantissa, e, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + (e + exponent if e else "")


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a YAML scalar")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _inline(value: Any) -> str | None:
    """The one-line form of a scalar, an empty container or a sequence of scalars; else None."""
    if _is_scalar(value):
        return scalar(value)
    if isinstance(value, Mapping) and not value:
        return "{}"
    if _is_sequence(value) and all(_is_scalar(v) for v in value):
        return "[" + ", ".join(scalar(v) for v in value) + "]"
    return None


def _lines(value: Any, depth: int) -> list[str]:
    pad = INDENT * depth
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping key {key!r} is not a string")
            one_line = _inline(item)
            if one_line is not None:
                out.append(f"{pad}{_string(key)}: {one_line}")
            else:
                out.append(f"{pad}{_string(key)}:")
                out.extend(_lines(item, depth + 1))
    elif _is_sequence(value):
        for item in value:
            one_line = _inline(item)
            if one_line is not None:
                out.append(f"{pad}- {one_line}")
                continue
            nested = _lines(item, depth + 1)
            out.append(f"{pad}- {nested[0].lstrip()}")
            out.extend(nested[1:])
    else:
        raise TypeError(f"cannot write {type(value).__name__} as a YAML block")
    return out


def dump(value: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """YAML text for a mapping of plain data, with `header` lines as leading comments."""
    comments = [f"# {line}".rstrip() for line in header]
    return "\n".join(comments + _lines(value, 0)) + "\n"
