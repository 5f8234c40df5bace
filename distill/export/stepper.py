"""A distill ONNX file run one control step at a time on the host, holding what the student carries.

The file's metadata (written by `onnx_export`) says its family: an MLP is stateless; a history
student's runner keeps the last k observations and stacks them as the file's layout says; a GRU's
runner feeds `h_out` back as the next `h_in`. At an episode's first step the buffer is filled with
that observation and the hidden state zeroed. The robot-side `run_policy.py` implements the same
rules on its own (it may not import distill); the ship tests hold the two equal.

`OnnxPolicy` runs `batch` independent envs (each through a batch-1 session call, the file's static
shape), so a batched MJX evaluation or a single robot-style loop use the same code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from distill.errors import DistillError
from distill.export.onnx_io import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATE_INPUT,
    STATE_OUTPUT,
    onnx_io,
    ort_session,
)
from distill.students.history import HistoryLayout


def read_metadata(path: str | Path) -> dict[str, str]:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def history_layout(meta: dict[str, str], input_width: int) -> HistoryLayout | None:
    """The stacking layout of a history student's file (None for other families)."""
    if meta.get("distill.family") != "history":
        return None
    try:
        length = int(meta["distill.history"])
        fields = tuple(json.loads(meta["distill.history_fields"]))
    except (KeyError, ValueError) as exc:
        raise DistillError(f"a history student's ONNX lacks its layout metadata ({exc}); re-export it") from None
    layout = HistoryLayout(length, fields)
    if layout.input_dim != input_width:
        raise DistillError(f"the file's history layout stacks {layout.input_dim} values, its input takes {input_width}")
    return layout


class OnnxPolicy:
    """One distill ONNX for `batch` envs, each with its own carried state."""

    def __init__(self, path: str | Path, batch: int = 1, threads: int = 1) -> None:
        self.path = Path(path)
        self.session = ort_session(self.path, threads=threads)
        model = onnx.load(str(self.path), load_external_data=False)
        io = onnx_io(model)
        meta = {p.key: p.value for p in model.metadata_props}
        self.family = meta.get("distill.family", "mlp")
        self.input_width = io["inputs"][INPUT_NAME][1]
        self.action_dim = io["outputs"][OUTPUT_NAME][1]
        self.layout = history_layout(meta, self.input_width)
        self.state_shape = tuple(io["inputs"].get(STATE_INPUT, ()))
        self.step_dim = self.layout.step_dim if self.layout is not None else self.input_width
        self.batch = batch
        self.buffer = np.zeros((batch, self.layout.length, self.step_dim), np.float32) if self.layout else None
        self.hidden = np.zeros((batch, *self.state_shape), np.float32) if self.state_shape else None
        self.fresh = np.ones(batch, bool)

    @property
    def stateful(self) -> bool:
        return self.layout is not None or bool(self.state_shape)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """The next step of the envs in `mask` (default: all) starts an episode."""
        mask = np.ones(self.batch, bool) if mask is None else np.asarray(mask, bool)
        self.fresh |= mask
        if self.hidden is not None:
            self.hidden[mask] = 0.0

    def _input(self, i: int, obs: np.ndarray) -> np.ndarray:
        if self.layout is None:
            return obs[None]
        if self.fresh[i]:
            self.buffer[i] = obs
        else:
            self.buffer[i, :-1] = self.buffer[i, 1:]
            self.buffer[i, -1] = obs
        return self.layout.stack(self.buffer[i])[None]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions [batch, A] for one step's observations [batch, step_dim]."""
        obs = np.asarray(obs, np.float32).reshape(self.batch, self.step_dim)
        out = np.empty((self.batch, self.action_dim), np.float32)
        for i in range(self.batch):
            feeds = {INPUT_NAME: self._input(i, obs[i])}
            if self.hidden is not None:
                feeds[STATE_INPUT] = self.hidden[i]
                action, self.hidden[i] = self.session.run([OUTPUT_NAME, STATE_OUTPUT], feeds)
                out[i] = action[0]
            else:
                out[i] = self.session.run([OUTPUT_NAME], feeds)[0][0]
        self.fresh[:] = False
        return out

    def run_sequence(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Actions [T, A] of one env through observations [T, step_dim], an episode starting wherever
        `starts` is true (and at row 0)."""
        if self.batch != 1:
            raise DistillError("run_sequence drives one env; build the OnnxPolicy with batch=1")
        obs = np.asarray(obs, np.float32)
        out = np.empty((obs.shape[0], self.action_dim), np.float32)
        self.reset()
        for t in range(obs.shape[0]):
            if starts[t]:
                self.reset()
            out[t] = self.act(obs[t : t + 1])[0]
        return out
