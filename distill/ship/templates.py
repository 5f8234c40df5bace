"""Fills in the robot-side templates (`distill/ship/robot/`) for one bundle.

The templates are real files, valid and runnable as they stand, with marked blocks:

    # >>> bundle constants: ...
    NAME = value
    # <<< bundle constants

Shipping replaces a block's body and nothing else. The constants written must be exactly the
names the template's block assigns, so a template that gains or loses a constant fails here
instead of on the robot. `run_policy.py` also gets the trtexec parser pasted in from its one
source file, `trtexec_summary.py`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import distill
from distill.errors import DistillError

ROBOT_DIR = Path(__file__).resolve().parent / "robot"
RUN_POLICY = "run_policy.py"
BUILD_ENGINE = "build_engine.sh"
PARSER_MODULE = "trtexec_summary.py"
CONSTANTS_BLOCK = "bundle constants"
PARSER_BLOCK = "trtexec_summary"
_ASSIGNED = re.compile(r"^([A-Z_][A-Z0-9_]*)=", re.MULTILINE)


@dataclass(frozen=True)
class RobotConstants:
    """The per-bundle values the robot-side scripts need."""

    bundle_name: str
    onnx_file: str
    engine_file: str
    precision: str
    input_name: str
    output_name: str
    obs_dim: int
    """One observation (what the controller reads each step)."""
    input_dim: int
    """The model's obs input: obs_dim, or history_length * obs_dim."""
    action_dim: int
    history_length: int
    history_fields: tuple[tuple[int, int], ...]
    state_input: str
    state_output: str
    state_shape: tuple[int, ...]
    control_hz: float
    budget_ms: float
    replay_obs_file: str
    replay_actions_file: str
    replay_starts_file: str
    tolerance_onnx: float
    tolerance_engine: float
    timings_file: str
    precision_flags: tuple[str, ...]
    workspace_mb: int
    trtexec: str
    """Where the target's trtexec lives (JetPack's path; TRTEXEC= overrides it on the robot)."""

    def python(self) -> dict[str, object]:
        return {
            "BUNDLE_NAME": self.bundle_name, "ONNX_FILE": self.onnx_file, "ENGINE_FILE": self.engine_file,
            "PRECISION": self.precision, "INPUT_NAME": self.input_name, "OUTPUT_NAME": self.output_name,
            "OBS_DIM": self.obs_dim, "INPUT_DIM": self.input_dim, "ACTION_DIM": self.action_dim,
            "HISTORY_LENGTH": self.history_length, "HISTORY_FIELDS": self.history_fields,
            "STATE_INPUT": self.state_input, "STATE_OUTPUT": self.state_output, "STATE_SHAPE": self.state_shape,
            "CONTROL_HZ": self.control_hz, "BUDGET_MS": self.budget_ms, "REPLAY_OBS_FILE": self.replay_obs_file,
            "REPLAY_ACTIONS_FILE": self.replay_actions_file, "REPLAY_STARTS_FILE": self.replay_starts_file,
            "TOLERANCE_ONNX": self.tolerance_onnx,
            "TOLERANCE_ENGINE": self.tolerance_engine, "TIMINGS_FILE": self.timings_file,
        }

    def shell(self) -> dict[str, object]:
        return {
            "ONNX_FILE": self.onnx_file, "ENGINE_FILE": self.engine_file, "PRECISION": self.precision,
            "PRECISION_FLAGS": " ".join(self.precision_flags), "BUDGET_MS": f"{self.budget_ms:g}",
            "WORKSPACE_MB": self.workspace_mb, "TIMINGS_FILE": self.timings_file, "JETPACK_TRTEXEC": self.trtexec,
        }


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^# >>> {re.escape(name)}\b[^\n]*\n)(.*?)(^# <<< {re.escape(name)}\n)", re.MULTILINE | re.DOTALL)


def block_body(text: str, name: str, template: str) -> str:
    matches = list(_block(name).finditer(text))
    if len(matches) != 1:
        raise DistillError(f"{template}: expected one '# >>> {name}' block, found {len(matches)}; the template is damaged")
    return matches[0].group(2)


def replace_block(text: str, name: str, body: str, template: str) -> str:
    block_body(text, name, template)
    return _block(name).sub(lambda m: m.group(1) + body + m.group(3), text)


def _assigned_names(body: str) -> list[str]:
    return _ASSIGNED.findall(body.replace(" = ", "="))


def _fill_constants(text: str, template: str, values: Mapping[str, object], render) -> str:
    expected = _assigned_names(block_body(text, CONSTANTS_BLOCK, template))
    if sorted(expected) != sorted(values):
        raise DistillError(f"{template}: its constants {sorted(expected)} differ from those shipping writes "
                           f"{sorted(values)}; update distill/ship/templates.py with the template")
    return replace_block(text, CONSTANTS_BLOCK, "".join(render(k, values[k]) for k in expected), template)


def _python_line(name: str, value: object) -> str:
    return f"{name} = {value!r}\n"


def _shell_line(name: str, value: object) -> str:
    return f"{name}={shlex.quote(str(value))}\n"


def parser_source() -> str:
    """trtexec_summary.py as pasted into run_policy.py: unchanged, under a line naming its origin."""
    source = (ROBOT_DIR / PARSER_MODULE).read_text()
    if re.search(r"^from __future__ import", source, re.MULTILINE):
        raise DistillError(f"{PARSER_MODULE} must not use `from __future__`: it is pasted mid-file into {RUN_POLICY}")
    return f"# copied from distill/ship/robot/{PARSER_MODULE} by distill {distill.__version__}\n{source}"


def render_run_policy(constants: RobotConstants) -> str:
    text = (ROBOT_DIR / RUN_POLICY).read_text()
    text = _fill_constants(text, RUN_POLICY, constants.python(), _python_line)
    return replace_block(text, PARSER_BLOCK, parser_source(), RUN_POLICY)


def render_build_engine(constants: RobotConstants) -> str:
    text = (ROBOT_DIR / BUILD_ENGINE).read_text()
    return _fill_constants(text, BUILD_ENGINE, constants.shell(), _shell_line)
