"""Which student to ship: several presets distilled from one teacher, each exported at three
precisions, set latency against success.

- `records`: the typed sweep (`SweepEntry`, `SweepReport`), its table and the robot's timings joining it;
- `plot`: the latency-against-success picture;
- `files`: sweep.{json,md,png} and their copies under benchmarks/results/;
- `run`: `distill sweep`, which runs the pipeline once per preset (so it sits above it).
"""

DEFAULT_PRESETS = ("mlp_1x32", "mlp_2x64", "mlp_2x256", "mlp_4x512")
