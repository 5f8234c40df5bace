"""The rollout dataset's schema: one table of columns and the metadata stored as root attributes.

Writer, reader and validation all read `COLUMNS`, so a column is added or changed in one place.
Bump `SCHEMA_VERSION` whenever a change would make an old file read differently.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from distill import __version__
from distill.errors import DistillError

SCHEMA_VERSION = 1
FORMAT = "distill.rollouts"
"""Value of the root attribute `format`: tells our files apart from any other HDF5 file."""
COMMITTED_ROWS = "committed_rows"
"""Root attribute: rows readers may see. The writer moves it last, after the rows are flushed."""
COMMITTED_ROUNDS = "committed_rounds"
"""Root attribute: JSON [[round, end_row], ...]; a round counts if end_row <= committed_rows."""


@dataclass(frozen=True)
class Dims:
    obs_dim: int
    """State dims; the `obs` column holds state followed by goal (obs_dim + goal_dim)."""
    goal_dim: int
    action_dim: int


@dataclass(frozen=True)
class Column:
    name: str
    dtype: np.dtype
    shape: Callable[[Dims], tuple[int, ...]]
    """Per-row shape (without the leading row axis) for a dataset's dims."""
    doc: str


def _obs(d: Dims) -> tuple[int, ...]:
    return (d.obs_dim + d.goal_dim,)


def _goal(d: Dims) -> tuple[int, ...]:
    return (d.goal_dim,)


def _action(d: Dims) -> tuple[int, ...]:
    return (d.action_dim,)


def _scalar(d: Dims) -> tuple[int, ...]:
    return ()


F32, I32, I64, BOOL = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64), np.dtype(bool)

COLUMNS: tuple[Column, ...] = (
    Column("obs", F32, _obs, "state followed by goal, exactly what the teacher's actor reads"),
    Column("goal", F32, _goal, "the episode's goal"),
    Column("teacher_action", F32, _action, "tanh of the teacher's mean: the distillation label"),
    Column("teacher_mean", F32, _action, "teacher's pre-tanh Gaussian mean"),
    Column("teacher_log_std", F32, _action, "teacher's Gaussian log std"),
    Column(
        "behavior_action", F32, _action, "the action actually executed (teacher, student or mix)"
    ),
    Column("critic_value", F32, _scalar, "Q(s, teacher_action, g) from the teacher's critic"),
    Column("episode", I64, _scalar, "episode counter of the env that produced the row"),
    Column("t", I32, _scalar, "step within the episode"),
    Column("done", BOOL, _scalar, "the step that followed this row ended the episode"),
    Column("success", BOOL, _scalar, "the state the behaviour action led to is within the radius"),
    Column("round", I32, _scalar, "DAgger round that collected the row"),
)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
COLUMN_NAMES: tuple[str, ...] = tuple(COLUMN_BY_NAME)


def check_column_names(names: object, path: Path | str) -> tuple[str, ...]:
    """Validates a user's column selection (None means all)."""
    if names is None:
        return COLUMN_NAMES
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in COLUMN_BY_NAME]
    if unknown:
        raise DistillError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"known columns: {', '.join(COLUMN_NAMES)}"
        )
    return names


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _json_roundtrip(value: Any, what: str) -> Any:
    """Normalises to what JSON gives back, so a meta read from a file equals the one written."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise DistillError(f"dataset metadata: {what} is not JSON-serialisable ({exc})") from None


@dataclass(frozen=True)
class DatasetMeta:
    """Everything that says where the rows came from; stored as the file's root attributes."""

    env_name: str
    teacher_name: str
    teacher_sha256: str
    """sha256 of the teacher's weights: two datasets agree on their labeller only if this does."""
    obs_dim: int
    goal_dim: int
    action_dim: int
    obs_names: tuple[str, ...]
    """One name per `obs` column entry: state then goal (as `EnvSpec.obs_names`)."""
    goal_names: tuple[str, ...]
    action_names: tuple[str, ...]
    control_dt: float
    env_config: Mapping[str, Any] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    """Free-form provenance: run config, student preset, command line."""
    created: str = field(default_factory=utc_now_iso)
    distill_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        normal: dict[str, Any] = {
            k: int(getattr(self, k))
            for k in ("obs_dim", "goal_dim", "action_dim", "schema_version")
        }
        for k in ("obs_names", "goal_names", "action_names"):
            normal[k] = tuple(str(n) for n in getattr(self, k))
        normal["control_dt"] = float(self.control_dt)
        for k in ("env_config", "lineage"):
            normal[k] = _json_roundtrip(dict(getattr(self, k)), k)
        for k, v in normal.items():
            object.__setattr__(self, k, v)
        expected = {
            "obs_names": self.obs_dim + self.goal_dim,
            "goal_names": self.goal_dim,
            "action_names": self.action_dim,
        }
        for k, n in expected.items():
            if len(getattr(self, k)) != n:
                raise DistillError(
                    f"dataset metadata: {k} has {len(getattr(self, k))} names, expected {n} "
                    f"(obs_dim={self.obs_dim}, goal_dim={self.goal_dim}, "
                    f"action_dim={self.action_dim})"
                )

    @classmethod
    def from_env_spec(
        cls,
        spec: Any,
        *,
        teacher_name: str,
        teacher_sha256: str,
        env_config: Mapping[str, Any] | None = None,
        lineage: Mapping[str, Any] | None = None,
    ) -> DatasetMeta:
        """Builds the meta from an `EnvSpec`; goal names are the goal part of its obs names."""
        return cls(
            env_name=spec.name,
            teacher_name=teacher_name,
            teacher_sha256=teacher_sha256,
            obs_dim=spec.obs_dim,
            goal_dim=spec.goal_dim,
            action_dim=spec.action_dim,
            obs_names=spec.obs_names,
            goal_names=spec.obs_names[spec.obs_dim :],
            action_names=spec.action_names,
            control_dt=spec.control_dt,
            env_config=env_config or {},
            lineage=lineage or {},
        )

    @property
    def dims(self) -> Dims:
        return Dims(self.obs_dim, self.goal_dim, self.action_dim)

    def to_attrs(self) -> dict[str, str | int | float]:
        """Scalars stay scalars (readable in h5dump); names and mappings become JSON strings."""
        attrs: dict[str, str | int | float] = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (tuple, dict)):
                value = json.dumps(
                    value if isinstance(value, dict) else list(value), sort_keys=True
                )
            attrs[f.name] = value
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], path: Path | str) -> DatasetMeta:
        """Reads the root attributes back; refuses files that are not ours or of another version."""
        fmt = _as_str(attrs.get("format"))
        if fmt != FORMAT:
            raise DistillError(
                f"{path} is not a distill rollout dataset (root attribute format={fmt!r}, "
                f"expected {FORMAT!r}); point at a datasets/<run>/rollouts.h5 written by distill"
            )
        version = int(attrs.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise DistillError(
                f"{path} has dataset schema version {version}, this distill {__version__} reads "
                f"version {SCHEMA_VERSION}; regenerate the dataset or use a matching distill"
            )
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in attrs:
                raise DistillError(
                    f"{path}: root attribute {f.name!r} is missing; the file is damaged, "
                    "regenerate it"
                )
            value = attrs[f.name]
            if f.name in ("obs_names", "goal_names", "action_names", "env_config", "lineage"):
                value = json.loads(_as_str(value))
            elif isinstance(value, (bytes, np.bytes_, str)):
                value = _as_str(value)
            elif isinstance(value, np.generic):
                value = value.item()
            kwargs[f.name] = value
        return cls(**kwargs)

    def differences(self, other: DatasetMeta, fields: tuple[str, ...] | None = None) -> list[str]:
        """Names of the fields that differ; `created` and `distill_version` never count."""
        names = fields or tuple(
            f.name for f in dataclasses.fields(self) if f.name not in ("created", "distill_version")
        )
        return [n for n in names if getattr(self, n) != getattr(other, n)]


IDENTITY_FIELDS = ("env_name", "teacher_sha256", "obs_dim", "goal_dim", "action_dim")
"""What a resumed run must share with the file it appends to."""


def _as_str(value: Any) -> str | None:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return None if value is None else str(value)


# --- the file as a whole: shared by writer and reader --------------------------------------------
def open_file(path: Path, mode: str) -> h5py.File:
    """Opens an HDF5 file, turning h5py's OSErrors into one-line errors that say what to do."""
    if not path.exists():
        raise DistillError(
            f"{path} does not exist; write it with a distill run first (datasets/<run>/rollouts.h5)"
        )
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise DistillError(
                f"{path} is locked: another process is appending to it (retry once its round is "
                "committed), or the filesystem has no locks (then set HDF5_USE_FILE_LOCKING=FALSE)"
            ) from None
        raise DistillError(
            f"{path} is not a readable HDF5 file ({exc}); "
            "point at a datasets/<run>/rollouts.h5 written by distill"
        ) from None


def read_meta(f: h5py.File, path: Path) -> DatasetMeta:
    """The file's metadata, after checking every column has the shape and dtype the schema says."""
    meta = DatasetMeta.from_attrs(f.attrs, path)
    for col in COLUMNS:
        ds = f.get(col.name)
        want = col.shape(meta.dims)
        if ds is None or ds.shape[1:] != want or ds.dtype != col.dtype:
            got = "missing" if ds is None else f"{ds.dtype}{list(ds.shape)}"
            raise DistillError(
                f"{path}: column {col.name!r} is {got}, the schema says "
                f"{col.dtype}[N, {', '.join(map(str, want))}]; the file is damaged, regenerate it"
            )
    return meta


def read_commit(f: h5py.File, path: Path) -> tuple[int, list[tuple[int, int]]]:
    """(committed rows, [(round, end_row)...] of the committed rounds in append order)."""
    try:
        rows = int(f.attrs[COMMITTED_ROWS])
        spans = [(int(r), int(end)) for r, end in json.loads(_as_str(f.attrs[COMMITTED_ROUNDS]))]
    except (KeyError, ValueError, TypeError) as exc:
        raise DistillError(
            f"{path}: commit attributes are unreadable ({exc}); regenerate the file"
        ) from None
    if any(f[c.name].shape[0] < rows for c in COLUMNS):
        raise DistillError(
            f"{path}: {COMMITTED_ROWS}={rows} exceeds the rows stored; regenerate the file"
        )
    return rows, [(r, end) for r, end in spans if end <= rows]
