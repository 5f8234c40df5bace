"""PyTorch students (MLP with normaliser and tanh inside), their JAX mirror, supervised fitting."""
