"""ONNX export with a parity check, fp16/int8 (QDQ) variants, TensorRT engine builds."""
