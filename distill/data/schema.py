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

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 2 added the optional `teacher_obs` column and its names; a version-1 file reads as a
version-2 file without it."""
FORMAT = "distill.rollouts"
"""Value of the root attribute `format`: tells our files apart from any other HDF5 file."""
COMMITTED_ROWS = "committed_rows"
"""Root attribute: rows readers may see. The writer moves it last, after the rows are flushed."""
COMMITTED_ROUNDS = "committed_rounds"
"""Root attribute: JSON [[round, end_row], ...]; a round counts if end_row <= committed_rows."""


@dataclass(frozen=True)
class Dims:
    obs_dim: int
    """State dims of the student's observation; the `obs` column holds its state followed by its
    goal (obs_dim + goal_dim)."""
    goal_dim: int
    action_dim: int
    teacher_obs_dim: int = 0
    """Width of the `teacher_obs` column (the teacher's state + goal) when the teacher observes
    something else than the student; 0 when it observes `obs` too (no such column)."""
    teacher_goal_dim: int = 0
    """Goal entries at the end of `teacher_obs` (0 without that column)."""

    @property
    def episode_goal_dim(self) -> int:
        """Width of the `goal` column: the episode's goal as the teacher sees it."""
        return self.teacher_goal_dim if self.teacher_obs_dim else self.goal_dim


@dataclass(frozen=True)
class Column:
    name: str
    dtype: np.dtype
    shape: Callable[[Dims], tuple[int, ...]]
    """Per-row shape (without the leading row axis) for a dataset's dims."""
    doc: str
    optional: bool = False
    """Present only in files whose teacher observes something else than the student."""


def _obs(d: Dims) -> tuple[int, ...]:
    return (d.obs_dim + d.goal_dim,)


def _teacher_obs(d: Dims) -> tuple[int, ...]:
    return (d.teacher_obs_dim,)


def _goal(d: Dims) -> tuple[int, ...]:
    return (d.episode_goal_dim,)


def _action(d: Dims) -> tuple[int, ...]:
    return (d.action_dim,)


def _scalar(d: Dims) -> tuple[int, ...]:
    return ()


F32, I32, I64, BOOL = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64), np.dtype(bool)

COLUMNS: tuple[Column, ...] = (
    Column("obs", F32, _obs, "state followed by goal, exactly what the student reads"),
    Column(
        "teacher_obs", F32, _teacher_obs,
        "what the teacher's actor and critic read (privileged state), where it differs from obs",
        optional=True,
    ),
    Column("goal", F32, _goal, "the episode's goal, as the teacher observes it"),
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
TEACHER_LABELS: tuple[str, ...] = ("teacher_action", "teacher_mean", "teacher_log_std", "critic_value")
"""The columns the frozen teacher writes for every visited state."""


def columns_for(dims: Dims) -> tuple[Column, ...]:
    """The columns a file with these dims holds."""
    return tuple(c for c in COLUMNS if not c.optional or dims.teacher_obs_dim > 0)


def check_column_names(names: object, path: Path | str, dims: Dims | None = None) -> tuple[str, ...]:
    """Validates a user's column selection (None means all the file's columns)."""
    present = tuple(c.name for c in (COLUMNS if dims is None else columns_for(dims)))
    if names is None:
        return present
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in present]
    if unknown:
        raise DistillError(
            f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"columns in this file: {', '.join(present)}"
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
    """State dims of the `obs` column (the student's observation)."""
    goal_dim: int
    action_dim: int
    obs_names: tuple[str, ...]
    """One name per `obs` column entry: state then goal (the env's student observation)."""
    goal_names: tuple[str, ...]
    """Names of the `goal` column: the goal entries of the teacher's observation."""
    action_names: tuple[str, ...]
    control_dt: float
    teacher_obs_names: tuple[str, ...] = ()
    """One name per `teacher_obs` entry when the teacher observes something else; empty when the
    teacher reads `obs` too."""
    teacher_goal_dim: int = 0
    """Goal dims at the end of `teacher_obs` (0 without that column)."""
    env_config: Mapping[str, Any] = field(default_factory=dict)
    lineage: Mapping[str, Any] = field(default_factory=dict)
    """Free-form provenance: run config, student preset, command line."""
    created: str = field(default_factory=utc_now_iso)
    distill_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        normal: dict[str, Any] = {
            k: int(getattr(self, k))
            for k in ("obs_dim", "goal_dim", "action_dim", "schema_version", "teacher_goal_dim")
        }
        for k in ("obs_names", "goal_names", "action_names", "teacher_obs_names"):
            normal[k] = tuple(str(n) for n in getattr(self, k))
        normal["control_dt"] = float(self.control_dt)
        for k in ("env_config", "lineage"):
            normal[k] = _json_roundtrip(dict(getattr(self, k)), k)
        for k, v in normal.items():
            object.__setattr__(self, k, v)
        expected = {
            "obs_names": self.obs_dim + self.goal_dim,
            "goal_names": self.dims.episode_goal_dim,
            "action_names": self.action_dim,
        }
        for k, n in expected.items():
            if len(getattr(self, k)) != n:
                raise DistillError(
                    f"dataset metadata: {k} has {len(getattr(self, k))} names, expected {n} "
                    f"(obs_dim={self.obs_dim}, goal_dim={self.goal_dim}, "
                    f"action_dim={self.action_dim})"
                )
        if bool(self.teacher_obs_names) != bool(self.teacher_goal_dim) or (
                self.teacher_goal_dim > len(self.teacher_obs_names)):
            raise DistillError(
                f"dataset metadata: teacher_goal_dim={self.teacher_goal_dim} does not fit "
                f"{len(self.teacher_obs_names)} teacher_obs_names (both set, or neither)"
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
        """Builds the meta from an `EnvSpec`: `obs` is its student observation, and the teacher's
        goes into `teacher_obs` where the two differ."""
        student = spec.student_observation
        return cls(
            env_name=spec.name,
            teacher_name=teacher_name,
            teacher_sha256=teacher_sha256,
            obs_dim=student.state_dim,
            goal_dim=student.goal_dim,
            action_dim=spec.action_dim,
            obs_names=student.names,
            goal_names=spec.obs_names[spec.obs_dim :],
            action_names=spec.action_names,
            control_dt=spec.control_dt,
            teacher_obs_names=spec.obs_names if spec.asymmetric else (),
            teacher_goal_dim=spec.goal_dim if spec.asymmetric else 0,
            env_config=env_config or {},
            lineage=lineage or {},
        )

    @property
    def asymmetric(self) -> bool:
        """Whether the file has a `teacher_obs` column (the teacher saw privileged state)."""
        return bool(self.teacher_obs_names)

    @property
    def teacher_input_dim(self) -> int:
        """Width of what the teacher reads: `teacher_obs` if present, else `obs`."""
        return len(self.teacher_obs_names) if self.asymmetric else self.obs_dim + self.goal_dim

    @property
    def teacher_obs_column(self) -> str:
        return "teacher_obs" if self.asymmetric else "obs"

    @property
    def dims(self) -> Dims:
        return Dims(self.obs_dim, self.goal_dim, self.action_dim,
                    len(self.teacher_obs_names) if self.asymmetric else 0, self.teacher_goal_dim)

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
        if version not in READABLE_VERSIONS:
            raise DistillError(
                f"{path} has dataset schema version {version}, this distill {__version__} reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}; regenerate the dataset or "
                "use a matching distill"
            )
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in attrs:
                if version == 1 and f.name in ("teacher_obs_names", "teacher_goal_dim"):
                    continue
                raise DistillError(
                    f"{path}: root attribute {f.name!r} is missing; the file is damaged, "
                    "regenerate it"
                )
            value = attrs[f.name]
            if f.name in ("obs_names", "goal_names", "action_names", "teacher_obs_names",
                          "env_config", "lineage"):
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


IDENTITY_FIELDS = ("env_name", "teacher_sha256", "obs_dim", "goal_dim", "action_dim",
                   "teacher_obs_names")
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
    for col in columns_for(meta.dims):
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
    if any(f[c.name].shape[0] < rows for c in COLUMNS if c.name in f):
        raise DistillError(
            f"{path}: {COMMITTED_ROWS}={rows} exceeds the rows stored; regenerate the file"
        )
    return rows, [(r, end) for r, end in spans if end <= rows]
