"""`distill ship`: one archive that runs a student on a robot.

`inputs.load_ship_inputs` reads a run folder, `gate` decides whether it may ship,
`bundle.build_bundle` writes the archive (ONNX, deploy.yaml, build_engine.sh, run_policy.py,
replay rows, SHA256SUMS). Nothing is imported here, so the robot-side parser
(`distill.ship.robot.trtexec_summary`) loads without the rest.
"""
