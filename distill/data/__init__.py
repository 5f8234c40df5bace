"""The HDF5 rollout dataset: schema, crash-safe writer, reader, bounded-memory stream, validation.
Layout: datasets/README.md."""

from distill.data.reader import RolloutReader
from distill.data.schema import COLUMNS, SCHEMA_VERSION, Column, DatasetMeta, Dims
from distill.data.stream import RowStream
from distill.data.writer import RolloutWriter

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "Column",
    "DatasetMeta",
    "Dims",
    "RolloutReader",
    "RolloutWriter",
    "RowStream",
]
