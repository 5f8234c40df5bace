"""Per-epoch fit logs: a CSV rewritten atomically after every epoch, and TensorBoard event files
when the `tensorboard` package is installed (`torch.utils.tensorboard` needs it)."""

from __future__ import annotations

import csv
import importlib.util
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from distill.atomic import write_text_atomic

CSV_NAME = "fit.csv"


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    """1-based."""
    steps: int
    """Gradient steps since the fit began."""
    train_loss: float
    """Mean loss of the epoch's training batches (the weights moved during the epoch)."""
    val_loss: float | None
    """Loss on the validation split after the epoch; None without one."""
    seconds: float
    """Since the fit began."""


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class FitLog:
    """Writes `fit.csv` (and TensorBoard events) into `directory`, one row per epoch."""

    def __init__(self, directory: str | Path, loss: str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.directory / CSV_NAME
        self.loss = loss
        self._records: list[EpochRecord] = []
        self._tensorboard = None
        if tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.directory))

    @property
    def writes_tensorboard(self) -> bool:
        return self._tensorboard is not None

    def write(self, record: EpochRecord) -> None:
        self._records.append(record)
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\n")
        out.writerow([f.name for f in fields(EpochRecord)])
        for r in self._records:
            out.writerow(["" if v is None else v for v in astuple(r)])
        write_text_atomic(self.csv_path, text.getvalue())
        if self._tensorboard is not None:
            self._tensorboard.add_scalar(f"{self.loss}/train", record.train_loss, record.epoch)
            if record.val_loss is not None:
                self._tensorboard.add_scalar(f"{self.loss}/val", record.val_loss, record.epoch)
            self._tensorboard.flush()

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def read_fit_csv(path: str | Path) -> list[EpochRecord]:
    """The records a `fit.csv` holds (for reports and tests)."""
    with open(path, newline="") as f:
        return [
            EpochRecord(int(r["epoch"]), int(r["steps"]), float(r["train_loss"]),
                        None if r["val_loss"] == "" else float(r["val_loss"]), float(r["seconds"]))
            for r in csv.DictReader(f)
        ]
