"""Named student sizes and their training hyper-parameters, read from `students/presets.toml`.

Every field is checked on load, and unknown keys are refused, so a typo in the TOML fails with
the file and field named instead of silently training the wrong student.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from distill.artifacts import read_toml
from distill.errors import DistillError
from distill.paths import students_dir
from distill.students.loss_names import LOSSES

PRESETS_FILE = "presets.toml"
SUPPORTED_ACTIVATIONS = ("elu",)
DEPTH_RANGE = (1, 8)
WIDTH_RANGE = (32, 512)
FAMILIES = ("mlp", "history", "gru")
"""mlp: the current observation only; history: the last `history` observations stacked (oldest first,
per field); gru: a GRU of `layers` x `hidden` units whose output feeds the MLP of depth x width."""
HISTORY_RANGE = (2, 64)
HIDDEN_RANGE = (8, 512)
LAYERS_RANGE = (1, 4)
FAMILY_KEYS = {"mlp": set(), "history": {"history"}, "gru": {"hidden", "layers"}}
"""Keys each family requires beside depth and width (and refuses when it is another family)."""


@dataclass(frozen=True)
class StudentPreset:
    """A student's shape: `depth` hidden layers of `width` units, fed the current observation (mlp),
    the last `history` observations (history), or a GRU's output (gru: `layers` x `hidden`)."""

    name: str
    depth: int
    width: int
    activation: str = "elu"
    family: str = "mlp"
    history: int = 1
    """Observations stacked into the input (history family; 1 otherwise)."""
    hidden: int = 0
    """GRU units per layer (gru family; 0 otherwise)."""
    layers: int = 0
    """GRU layers (gru family; 0 otherwise)."""

    @property
    def recurrent(self) -> bool:
        """Whether the student carries state from step to step (a history buffer or a hidden state)."""
        return self.family != "mlp"


@dataclass(frozen=True)
class StudentTrainConfig:
    """Supervised fitting of a student on (obs, teacher action) rows."""

    epochs: int = 30
    """Passes over the dataset per fit."""
    batch_size: int = 256
    lr: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """L2 penalty inside Adam."""
    min_steps: int = 0
    """At least this many gradient steps per fit: early DAgger rounds hold few rows, and a fixed
    number of epochs over them would leave the student underfitted."""
    loss: str = "mse"
    """Either "mse" (tanh action vs the teacher's) or "kl" (KL(teacher || student) between the
    Gaussians in pre-tanh space; the student gets a training-only log-std head)."""
    val_fraction: float = 0.1
    """Share of episodes held out for validation (a fixed hash of the episode id); 0 for none."""
    patience: int = 5
    """Stop after this many epochs without a better validation loss (never before min_steps);
    0 never stops early. The best weights on validation are kept either way."""
    max_memory_mb: float = 1024.0
    """Bound on what streaming a dataset holds (shuffle buffer, scratch, HDF5's reserve)."""
    bptt: int = 32
    """GRU students: steps per truncated back-propagation window. Episodes are cut into windows of
    this many steps; the hidden state flows from one window to the next (detached), starting from
    zeros at each episode's first step; `batch_size // bptt` episodes make one step's batch."""


def default_presets_path() -> Path:
    return students_dir() / PRESETS_FILE


def _read(path: str | Path | None) -> tuple[Path, dict[str, Any]]:
    path = Path(path) if path is not None else default_presets_path()
    if not path.is_file():
        raise DistillError(f"student presets file {path} not found; restore students/{PRESETS_FILE}")
    try:
        return path, tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise DistillError(f"{path}: invalid TOML ({exc}); fix the file") from None


def _check_int(path: Path, where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DistillError(f"{path}: {where} = {value!r}; expected an integer in [{lo}, {hi}]")
    return value


def _preset(path: Path, name: str, table: Any) -> StudentPreset:
    where = f"[presets.{name}]"
    if not isinstance(table, dict):
        raise DistillError(f"{path}: {where} must be a table with depth, width, activation")
    allowed = {"depth", "width", "activation", "family", "train", *set().union(*FAMILY_KEYS.values())}
    unknown = set(table) - allowed
    if unknown:
        raise DistillError(f"{path}: {where} has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    family = table.get("family", "mlp")
    if family not in FAMILIES:
        raise DistillError(f"{path}: {where}.family = {family!r}; use one of {', '.join(FAMILIES)}")
    for key in ("depth", "width", *sorted(FAMILY_KEYS[family])):
        if key not in table:
            raise DistillError(f"{path}: {where} is missing `{key}`" + (f" (the {family} family needs it)"
                                                                       if key in FAMILY_KEYS[family] else ""))
    foreign = sorted((set(table) & set().union(*FAMILY_KEYS.values())) - FAMILY_KEYS[family])
    if foreign:
        raise DistillError(f"{path}: {where} sets {', '.join(foreign)}, which the {family} family does not use; "
                           "set `family` or drop the key")
    activation = table.get("activation", "elu")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise DistillError(
            f"{path}: {where}.activation = {activation!r}; supported: {', '.join(SUPPORTED_ACTIVATIONS)}"
        )
    return StudentPreset(
        name=name,
        depth=_check_int(path, f"{where}.depth", table["depth"], *DEPTH_RANGE),
        width=_check_int(path, f"{where}.width", table["width"], *WIDTH_RANGE),
        activation=activation,
        family=family,
        history=_check_int(path, f"{where}.history", table["history"], *HISTORY_RANGE) if family == "history" else 1,
        hidden=_check_int(path, f"{where}.hidden", table["hidden"], *HIDDEN_RANGE) if family == "gru" else 0,
        layers=_check_int(path, f"{where}.layers", table["layers"], *LAYERS_RANGE) if family == "gru" else 0,
    )


def _train(path: Path, where: str, table: Any, base: StudentTrainConfig) -> StudentTrainConfig:
    if not isinstance(table, dict):
        raise DistillError(f"{path}: {where} must be a table")
    allowed = {f.name for f in fields(StudentTrainConfig)}
    unknown = set(table) - allowed
    if unknown:
        raise DistillError(f"{path}: {where} has unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
    cfg = replace(base, **table)
    _check_int(path, f"{where}.epochs", cfg.epochs, 1, 1_000_000)
    _check_int(path, f"{where}.batch_size", cfg.batch_size, 1, 1 << 24)
    _check_int(path, f"{where}.min_steps", cfg.min_steps, 0, 100_000_000)
    _check_int(path, f"{where}.patience", cfg.patience, 0, 1_000_000)
    _check_int(path, f"{where}.bptt", cfg.bptt, 1, 100_000)
    for key in ("lr", "weight_decay"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "lr" and value == 0):
            raise DistillError(f"{path}: {where}.{key} = {value!r}; expected a {'positive' if key == 'lr' else 'non-negative'} number")
    if cfg.loss not in LOSSES:
        raise DistillError(f"{path}: {where}.loss = {cfg.loss!r}; expected one of {', '.join(LOSSES)}")
    if not (_is_number(cfg.val_fraction) and 0.0 <= cfg.val_fraction < 1.0):
        raise DistillError(f"{path}: {where}.val_fraction = {cfg.val_fraction!r}; expected a number in [0, 1)")
    if not (_is_number(cfg.max_memory_mb) and 0.0 < cfg.max_memory_mb < math.inf):
        raise DistillError(f"{path}: {where}.max_memory_mb = {cfg.max_memory_mb!r}; expected a positive number")
    return replace(cfg, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay), val_fraction=float(cfg.val_fraction),
                   max_memory_mb=float(cfg.max_memory_mb))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_presets(path: str | Path | None = None) -> dict[str, StudentPreset]:
    """All presets in the file, by name (default file: students/presets.toml)."""
    path, doc = _read(path)
    tables = doc.get("presets")
    if not isinstance(tables, dict) or not tables:
        raise DistillError(f"{path}: no [presets.<name>] tables; add at least one preset")
    return {name: _preset(path, name, table) for name, table in tables.items()}


def default_preset_name(path: str | Path | None = None) -> str:
    path, doc = _read(path)
    name = doc.get("default")
    if not isinstance(name, str):
        raise DistillError(f"{path}: top-level `default` (the default preset's name) is missing")
    return name


def get_preset(name: str | None = None, path: str | Path | None = None) -> StudentPreset:
    """One preset by name (None: the file's default); an unknown name lists the known ones."""
    presets = load_presets(path)
    name = name if name is not None else default_preset_name(path)
    if name not in presets:
        raise DistillError(f"unknown student preset {name!r}; known presets: {', '.join(sorted(presets))}")
    return presets[name]


def load_train_config(preset: str | None = None, path: str | Path | None = None) -> StudentTrainConfig:
    """The shared [train] table, with the preset's own [presets.<name>.train] fields over it."""
    path_, doc = _read(path)
    cfg = _train(path_, "[train]", doc.get("train", {}), StudentTrainConfig())
    if preset is None:
        return cfg
    get_preset(preset, path)
    override = doc["presets"][preset].get("train")
    return cfg if override is None else _train(path_, f"[presets.{preset}.train]", override, cfg)


def read_train_overrides(path: str | Path, base: StudentTrainConfig) -> StudentTrainConfig:
    """`base` with the fields of a TOML file's [train] table over it (for `distill fit --train-config`)."""
    path = Path(path)
    doc = read_toml(path, f"train config {path} not found; pass a TOML file with a [train] table")
    unknown = set(doc) - {"train"}
    if unknown or "train" not in doc:
        raise DistillError(f"{path}: expected one [train] table (fields of [train] in students/{PRESETS_FILE}), "
                           f"found {sorted(doc) or 'nothing'}")
    return _train(path, "[train]", doc["train"], base)
