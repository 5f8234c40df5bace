"""The HDF5 rollout dataset: schema, crash-safe writer, reader. Layout: datasets/README.md."""

from distill.data.reader import RolloutReader
from distill.data.schema import COLUMNS, SCHEMA_VERSION, Column, DatasetMeta, Dims
from distill.data.writer import RolloutWriter

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "Column",
    "DatasetMeta",
    "Dims",
    "RolloutReader",
    "RolloutWriter",
]
