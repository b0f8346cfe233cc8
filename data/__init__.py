"""Schemas, validated loading, synthetic consortia, partitioners and encoding."""

from fedrisk.data.encoding import TableEncoder
from fedrisk.data.errors import DataValidationError
from fedrisk.data.loading import load_table
from fedrisk.data.partition import by_column, dirichlet_label_skew, iid
from fedrisk.data.schema import FeatureKind, FeatureSpec, TableSchema
from fedrisk.data.schema_file import read_schema, schema_to_yaml
from fedrisk.data.synthetic import (
    BankProfile,
    SyntheticConsortium,
    credit_schema,
    generate_credit_consortium,
    power_law_sizes,
)

__all__ = [
    "BankProfile",
    "DataValidationError",
    "FeatureKind",
    "FeatureSpec",
    "SyntheticConsortium",
    "TableEncoder",
    "TableSchema",
    "by_column",
    "credit_schema",
    "dirichlet_label_skew",
    "generate_credit_consortium",
    "iid",
    "load_table",
    "power_law_sizes",
    "read_schema",
    "schema_to_yaml",
]
