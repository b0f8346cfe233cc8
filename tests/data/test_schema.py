from __future__ import annotations

import re
from dataclasses import fields

import pytest
from omegaconf import OmegaConf

from fedrisk.data import FeatureKind, FeatureSpec, TableSchema


def _income() -> FeatureSpec:
    return FeatureSpec(name="income", low=5_000, high=500_000, log=True)


def _region() -> FeatureSpec:
    return FeatureSpec(name="region", kind=FeatureKind.categorical, levels=["north", "south"])


def test_enum_member_names_equal_values() -> None:
    assert [(m.name, m.value) for m in FeatureKind] == [
        ("numeric", "numeric"),
        ("categorical", "categorical"),
    ]


def test_kind_given_as_string_is_coerced() -> None:
    spec = FeatureSpec(name="region", kind="categorical", levels=["a", "b"])  # type: ignore[arg-type]

    assert spec.kind is FeatureKind.categorical


def test_numeric_range_is_stored_as_float() -> None:
    spec = FeatureSpec(name="age", low=18, high=99, integer=True)

    assert (spec.low, spec.high) == (18.0, 99.0)
    assert isinstance(spec.low, float)


def test_columns_are_features_label_then_extra_protected() -> None:
    schema = TableSchema(features=[_income(), _region()], label="default", protected="sex")

    assert schema.columns == ["income", "region", "default", "sex"]


def test_protected_that_is_a_feature_is_not_repeated() -> None:
    schema = TableSchema(features=[_income(), _region()], protected="region")

    assert schema.columns == ["income", "region", "default"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x"}, "numeric feature 'x': `low` and `high` must both be set"),
        ({"name": "x", "low": 1.0}, "numeric feature 'x': `low` and `high` must both be set"),
        ({"name": "x", "low": 5.0, "high": 5.0}, "numeric feature 'x': `low` must be less"),
        ({"name": "x", "low": 9.0, "high": 1.0}, "`low` must be less than `high`"),
        ({"name": "x", "low": -1.0, "high": 1.0, "log": True}, "`low` must be >= 0"),
        ({"name": "x", "low": 0.0, "high": 1.0, "levels": ["a"]}, "`levels` must be empty"),
        ({"name": "c", "kind": "categorical"}, "categorical feature 'c': `levels` must hold"),
        ({"name": "c", "kind": "categorical", "levels": ["a"]}, "at least 2 distinct"),
        ({"name": "c", "kind": "categorical", "levels": ["a", "a"]}, "at least 2 distinct"),
        ({"name": "c", "kind": "categorical", "levels": ["a", "b", "a"]}, "must be distinct"),
        ({"name": "c", "kind": "categorical", "levels": ["a", "b"], "low": 0.0}, "must be unset"),
        ({"name": ""}, "feature `name` must be a non-empty string"),
        ({}, "feature `name` must be a non-empty string; got '???'"),
        ({"name": "x", "kind": "ordinal"}, "'ordinal' is not a valid FeatureKind"),
    ],
)
def test_invalid_feature_is_rejected_naming_it(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FeatureSpec(**kwargs)  # type: ignore[arg-type]


def test_schema_needs_a_feature() -> None:
    with pytest.raises(ValueError, match=r"`features` must list at least one feature; got \[\]"):
        TableSchema(features=[])


def test_schema_rejects_duplicate_feature_names() -> None:
    with pytest.raises(ValueError, match=r"unique; got duplicates \['income'\]"):
        TableSchema(features=[_income(), _region(), _income()])


def test_schema_rejects_label_that_is_a_feature() -> None:
    with pytest.raises(
        ValueError, match="`label` must not also be a feature; got feature 'income'"
    ):
        TableSchema(features=[_income()], label="income")


def test_schema_rejects_protected_equal_to_label() -> None:
    with pytest.raises(ValueError, match="`protected` must differ from the label; got 'default'"):
        TableSchema(features=[_income()], protected="default")


def test_schema_is_a_structured_config_that_round_trips_from_yaml() -> None:
    yaml = """
    features:
      - {name: income, low: 5000, high: 500000, log: true}
      - {name: term, kind: categorical, levels: [36, 60]}
    label: default
    protected: null
    """
    merged = OmegaConf.merge(OmegaConf.structured(TableSchema), OmegaConf.create(yaml))

    schema = OmegaConf.to_object(merged)

    assert isinstance(schema, TableSchema)
    assert schema.features[0] == FeatureSpec(name="income", low=5000.0, high=500000.0, log=True)
    assert schema.features[1].kind is FeatureKind.categorical
    assert schema.features[1].levels == ["36", "60"]
    assert schema.columns == ["income", "term", "default"]


def test_structured_config_validates_on_to_object() -> None:
    yaml = "features: [{name: income, low: 10, high: 1}]"
    merged = OmegaConf.merge(OmegaConf.structured(TableSchema), OmegaConf.create(yaml))

    with pytest.raises(ValueError, match="numeric feature 'income': `low` must be less"):
        OmegaConf.to_object(merged)


def test_fields_carry_help() -> None:
    for cls in (FeatureSpec, TableSchema):
        assert all(f.metadata.get("help") for f in fields(cls)), cls


def test_several_protected_columns_follow_the_label_once_each() -> None:
    schema = TableSchema(features=[_income(), _region()], protected=["black", "region", "male"])

    assert schema.protected_columns == ["black", "region", "male"]
    assert schema.columns == ["income", "region", "default", "black", "male"]


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        (["sex", "sex"], "`protected` columns must be distinct"),
        (["sex", "default"], "`protected` must differ from the label; got 'default'"),
        ([""], "`protected` columns must be non-empty names"),
    ],
)
def test_bad_protected_columns_raise(protected: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TableSchema(features=[_income()], protected=protected)
