import json

import pytest

from fedrisk.conf.consortium import ConsortiumConfig, InstitutionConfig
from fedrisk.conf.root import (
    RUN_CONFIG_KEY,
    ConfigError,
    load_settings,
    settings_from_run_config,
    settings_to_json,
)
from fedrisk.conf.strategy import StrategyName
from fedrisk.simulations.entry import check_overrides


def test_defaults_compose_to_the_documented_run():
    settings = check_overrides([])

    assert settings.rounds == 10
    assert settings.seed == 42
    assert settings.consortium.name == "banks_5"
    assert [i.name for i in settings.consortium.institutions] == [
        "bank_a",
        "bank_b",
        "bank_c",
        "bank_d",
        "bank_e",
    ]
    assert settings.task.name == "credit_default"
    assert settings.strategy.name is StrategyName.fedavg
    assert settings.privacy.mode.value == "none"
    assert settings.secagg.mode.value == "none"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["strategy=fedprox"], ("fedprox", 0.1)),
        (["strategy=fedadam"], ("fedadam", 0.0)),
        (["strategy=fedprox", "strategy.proximal_mu=0.5"], ("fedprox", 0.5)),
    ],
)
def test_strategies_are_selectable(overrides, expected):
    settings = check_overrides(overrides)

    assert (settings.strategy.name.value, settings.strategy.proximal_mu) == expected


def test_every_consortium_config_validates():
    for name in ("banks_3", "banks_5", "banks_20_skewed"):
        settings = check_overrides([f"consortium={name}"])
        assert settings.consortium.name == name
    skewed = check_overrides(["consortium=banks_20_skewed"]).consortium
    assert skewed.generate is not None and skewed.generate.count == 20


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        (
            "consortium=nope",
            "Could not find 'consortium/nope'; available: banks_20_skewed, banks_3",
        ),
        ("strategy.fraction_train=2", "`strategy.fraction_train` must be in (0, 1]; got 2.0"),
        ("rounds=abc", "could not be converted to Integer"),
        ("rounds=0", "`rounds` must be at least 1; got 0"),
        ("strategy.foo=1", "Key 'foo' not in 'StrategyConfig'"),
        ("task.model.kind=tree", "expected one of [logistic, mlp, gru, lstm]"),
        ("task.model.dropout=1.5", "`model.dropout` must be in [0, 1); got 1.5"),
        ("strategy.proximal_mu=0.3", "applies to fedprox only"),
        ("task.train.batch_size=0", "`train.batch_size` must be at least 1; got 0"),
        ("strategy.min_train_nodes=9", "at most the 5 institutions of consortium banks_5"),
        ("privacy=central strategy=fedadam", "must be fedavg or fedprox with privacy=central"),
        ("privacy.delta=2", "`privacy.delta` must be in (0, 1); got 2.0"),
        ("privacy.accountant=moments", "expected one of [rdp, prv]"),
    ],
)
def test_bad_overrides_fail_with_one_line(override, fragment):
    with pytest.raises(ConfigError) as caught:
        check_overrides(override.split())

    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_unknown_key_in_a_mapping_is_rejected():
    with pytest.raises(ConfigError, match="`colour`"):
        load_settings({"colour": "red"})


def test_run_config_round_trip_rebuilds_identical_settings():
    settings = check_overrides(["strategy=fedadam", "rounds=3", "seed=7"])

    rebuilt = settings_from_run_config({RUN_CONFIG_KEY: settings_to_json(settings)})

    assert rebuilt == settings


def test_run_config_without_fedrisk_key_is_refused():
    with pytest.raises(ConfigError, match="fedrisk-config"):
        settings_from_run_config({"something": "else"})


def test_tampered_run_config_is_rejected():
    settings = check_overrides([])
    raw = json.loads(settings_to_json(settings))
    raw["strategy"]["fraction_train"] = -1

    with pytest.raises(ConfigError, match="fraction_train"):
        settings_from_run_config({RUN_CONFIG_KEY: json.dumps(raw)})


def test_consortium_needs_unique_institutions():
    with pytest.raises(ValueError, match="unique"):
        ConsortiumConfig(
            name="x",
            institutions=[
                InstitutionConfig(name="a", rows=10),
                InstitutionConfig(name="a", rows=10),
            ],
        )


def test_segment_mix_must_sum_to_one():
    with pytest.raises(ValueError, match="summing to 1"):
        InstitutionConfig(name="a", rows=10, segment_mix=[0.5, 0.5, 0.5])
