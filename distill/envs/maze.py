"""Maze layouts of the paper's ant and humanoid mazes, and the boxes that build their walls.

A layout is a grid of characters: `#` wall, `.` free, `r` a reset (start) cell, `g` a goal cell.
Cell (i, j) is centred at (i * cell_size, j * cell_size): the row index runs along world x and the
column index along y, as in JaxGCRL (whose grids come from D4RL's ant maze). Walls are boxes filling
their cell, `height_scale * cell_size` tall (ant: 4 m cells and 2 m walls; humanoid: 2 m cells and
1 m walls).

Each wall cell is its own box, as in the paper's envs (and small boxes keep MJX's broad phase,
which ranks geom pairs by bounding-sphere distance, effective).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

import jax
import mujoco
import numpy as np

WALL, FREE, RESET, GOAL = "#", ".", "r", "g"
WALL_RGBA = (0.7, 0.5, 0.3, 1.0)


@dataclass(frozen=True)
class MazeLayout:
    """A named grid; `rows[i][j]` is cell (i, j)."""

    name: str
    rows: tuple[str, ...]

    def __post_init__(self) -> None:
        width = len(self.rows[0])
        for row in self.rows:
            if len(row) != width or set(row) - {WALL, FREE, RESET, GOAL}:
                raise ValueError(f"maze {self.name}: ragged row or unknown cell in {row!r}")
        if not self.cells(RESET) or not self.cells(GOAL):
            raise ValueError(f"maze {self.name}: needs at least one reset and one goal cell")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    def cells(self, kind: str) -> tuple[tuple[int, int], ...]:
        return tuple(
            (i, j) for i, row in enumerate(self.rows) for j, c in enumerate(row) if c == kind
        )

    def is_wall(self, i: int, j: int) -> bool:
        rows, cols = self.shape
        return not (0 <= i < rows and 0 <= j < cols) or self.rows[i][j] == WALL

    def positions(self, kind: str, cell_size: float) -> np.ndarray:
        """World xy of the centres of all cells of one kind, shape (n, 2)."""
        return np.asarray(self.cells(kind), dtype=np.float32) * cell_size

    def cell_of(self, xy: np.ndarray, cell_size: float) -> tuple[int, int]:
        i, j = np.floor(np.asarray(xy) / cell_size + 0.5).astype(int)
        return int(i), int(j)


U_MAZE = MazeLayout("u_maze", (
    "#####",
    "#rgg#",
    "###g#",
    "#ggg#",
    "#####",
))
U_MAZE_EVAL = MazeLayout("u_maze_eval", (
    "#####",
    "#r..#",
    "###.#",
    "#ggg#",
    "#####",
))
BIG_MAZE = MazeLayout("big_maze", (
    "########",
    "#rg##gg#",
    "#gg#ggg#",
    "##ggg###",
    "#gg#ggg#",
    "#g#gg#g#",
    "#ggg#gg#",
    "########",
))
ANT_BIG_MAZE_EVAL = MazeLayout("ant_big_maze_eval", (
    "########",
    "#r.##gg#",
    "#..#..g#",
    "##...###",
    "#..#...#",
    "#.#g.#g#",
    "#.gg#gg#",
    "########",
))
"""The ant's far-goal grid: one cell, (2, 5), is not a goal here where the humanoid's has it."""
BIG_MAZE_EVAL = MazeLayout("big_maze_eval", (
    "########",
    "#r.##gg#",
    "#..#.gg#",
    "##...###",
    "#..#...#",
    "#.#g.#g#",
    "#.gg#gg#",
    "########",
))
HARDEST_MAZE = MazeLayout("hardest_maze", (
    "############",
    "#rggg#ggggg#",
    "#g##g#g#g#g#",
    "#gggggg#ggg#",
    "#g####g###g#",
    "#gg#g#ggggg#",
    "##g#g#g#g###",
    "#gg#ggg#ggg#",
    "############",
))

LAYOUTS: dict[str, MazeLayout] = {
    m.name: m
    for m in (U_MAZE, U_MAZE_EVAL, BIG_MAZE, BIG_MAZE_EVAL, ANT_BIG_MAZE_EVAL, HARDEST_MAZE)
}
EVAL_LAYOUTS: dict[str, MazeLayout] = {"u_maze": U_MAZE_EVAL, "big_maze": BIG_MAZE_EVAL}
"""The paper's evaluation grids: same walls and start, goals only in the far cells.
The hardest maze has none in the paper's code; the ant's big-maze grid is its own."""
ROBOT_EVAL_LAYOUTS: dict[tuple[str, str], MazeLayout] = {("ant", "big_maze"): ANT_BIG_MAZE_EVAL}


def layout_for(name: str, eval_far_goals: bool, robot: str = "humanoid") -> MazeLayout:
    """The training layout, or its far-goal evaluation twin (as the robot's own env defines it)."""
    from distill.errors import DistillError

    if not eval_far_goals:
        return LAYOUTS[name]
    if (robot, name) in ROBOT_EVAL_LAYOUTS:
        return ROBOT_EVAL_LAYOUTS[(robot, name)]
    if name not in EVAL_LAYOUTS:
        raise DistillError(
            f"maze {name!r} has no far-goal evaluation layout (the paper defines them for "
            f"{', '.join(EVAL_LAYOUTS)}); evaluate it with eval_far_goals=False"
        )
    return EVAL_LAYOUTS[name]


def wall_elements(
    root: ElementTree.Element, layout: MazeLayout, cell_size: float, height_scale: float
) -> None:
    """Appends one static box per wall cell to an MJCF tree's worldbody, named `wall_<i>_<j>`,
    colliding with everything (contype and conaffinity 1), as the paper's mazes do."""
    half = 0.5 * cell_size
    half_height = 0.5 * height_scale * cell_size
    worldbody = root.find("worldbody")
    for i, j in layout.cells(WALL):
        ElementTree.SubElement(
            worldbody, "geom", name=f"wall_{i}_{j}", type="box",
            pos=f"{i * cell_size:g} {j * cell_size:g} {half_height:g}",
            size=f"{half:g} {half:g} {half_height:g}",
            contype="1", conaffinity="1", rgba=" ".join(f"{c:g}" for c in WALL_RGBA),
        )


def limit_geom_pairs(spec: mujoco.MjSpec, max_geom_pairs: int) -> None:
    """Caps each MJX collision group at its nearest pairs (by bounding sphere); planes exempt.

    MJX 3.17 reads a numeric as `numeric_data[id]`, not at its address, so this must be the
    model's only numeric or it silently reads another one's data."""
    if len(spec.numerics):
        raise ValueError("max_geom_pairs must be the only numeric: delete the others first")
    spec.add_numeric(name="max_geom_pairs", data=[float(max_geom_pairs)])


def choose(key: jax.Array, positions: jax.Array) -> jax.Array:
    """One row of `positions`, uniformly at random."""
    return positions[jax.random.randint(key, (), 0, positions.shape[0])]


def wall_boxes(model: mujoco.MjModel) -> np.ndarray:
    """(n, 4) array of [x_min, x_max, y_min, y_max] of every wall box in a compiled model."""
    boxes = []
    for g in range(model.ngeom):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
        if name.startswith("wall_"):
            (x, y, _), (hx, hy, _) = model.geom_pos[g], model.geom_size[g]
            boxes.append([x - hx, x + hx, y - hy, y + hy])
    return np.asarray(boxes).reshape(-1, 4)

