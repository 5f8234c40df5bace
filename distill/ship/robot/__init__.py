"""Files that run on the robot (Python 3.8, numpy, tensorrt or onnxruntime; nothing from distill).

`distill ship` copies them into a bundle, filling in the marked constant blocks. Only
`trtexec_summary` is also imported on the host, so the parser is written once.
"""
