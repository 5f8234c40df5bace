"""Latency backends, target profiles and budget verdicts (success evaluation and the report live beside them)."""
