"""The `faults` and `validation` config groups: validation and seeded random dropouts."""

import pytest

from fedrisk.conf.faults import FaultsConfig, FaultStage, RandomDropouts
from fedrisk.conf.root import ConfigError, load_settings
from fedrisk.conf.validation import ValidationConfig
from fedrisk.simulations.entry import check_overrides


def test_random_dropouts_are_a_seeded_function_with_the_configured_rate() -> None:
    fault = RandomDropouts(probability=0.25)
    draws = [
        fault.strikes(f"bank_{i}", FaultStage.train, r, seed=7)
        for i in range(20)
        for r in range(50)
    ]
    again = [
        fault.strikes(f"bank_{i}", FaultStage.train, r, seed=7)
        for i in range(20)
        for r in range(50)
    ]
    other_seed = [
        fault.strikes(f"bank_{i}", FaultStage.train, r, seed=8)
        for i in range(20)
        for r in range(50)
    ]

    assert draws == again
    assert draws != other_seed
    # 1000 Bernoulli(0.25) draws: mean within 4 standard deviations (0.0137).
    assert abs(sum(draws) / len(draws) - 0.25) < 0.055
    assert not fault.strikes("bank_0", FaultStage.unmask, 1, seed=7) or False
    assert not any(
        RandomDropouts(probability=1.0, stage=FaultStage.unmask).strikes(
            "bank_0", FaultStage.train, r, seed=7
        )
        for r in range(10)
    )


def test_random_dropouts_can_be_limited_to_some_institutions() -> None:
    fault = RandomDropouts(probability=1.0, institutions=["bank_b"])

    assert fault.strikes("bank_b", FaultStage.train, 1, seed=0)
    assert not fault.strikes("bank_a", FaultStage.train, 1, seed=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "faults.random_dropouts=[{probability:1.5}]",
            "`faults.random_dropouts[].probability` must be in [0, 1]; got 1.5",
        ),
        (
            "faults.stragglers=[{institution:bank_a,delay:0}]",
            "`faults.stragglers[].delay` must be positive; got 0.0",
        ),
        (
            "faults.corrupt=[{institution:bank_z,kind:nan}]",
            "`faults.corrupt[].institution` must be one of",
        ),
        (
            "faults.replay=[{institution:bank_a,rounds:[0]}]",
            "`faults.replay[].rounds` must be at least 1; got [0]",
        ),
        (
            "faults.corrupt=[{institution:bank_a,kind:zero}]",
            "`faults.corrupt[].kind` must be one of ['nan', 'inf', 'wrong_shape', 'wrong_dtype', "
            "'huge_norm']; got 'zero'",
        ),
        ("validation.max_update_norm=-1", "`validation.max_update_norm` must be positive"),
    ],
)
def test_bad_fault_settings_fail_with_one_line_naming_the_field(
    override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        check_overrides([override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_corruptions_masked_words_cannot_carry_are_refused_under_secure_aggregation() -> None:
    with pytest.raises(ConfigError, match="must be wrong_shape or wrong_dtype with secagg"):
        check_overrides(["secagg=secaggplus", "faults.corrupt=[{institution:bank_a,kind:nan}]"])


def test_every_kind_of_fault_composes_from_overrides() -> None:
    settings = check_overrides(
        [
            "faults.random_dropouts=[{probability:0.1,stage:evaluate}]",
            "faults.stragglers=[{institution:bank_b,delay:2.5,rounds:[2]}]",
            "faults.corrupt=[{institution:bank_a,kind:huge_norm,rounds:[1,3]}]",
            "faults.replay=[{institution:bank_c,rounds:[2]}]",
        ]
    )

    faults = settings.faults
    assert faults.any
    assert faults.random_dropouts[0].stage is FaultStage.evaluate
    assert (faults.stragglers[0].institution, faults.stragglers[0].delay) == ("bank_b", 2.5)
    assert faults.corrupt[0].corruption.value == "huge_norm" and faults.corrupt[0].rounds == [1, 3]
    assert faults.replay[0].institution == "bank_c"
    assert not FaultsConfig().any
    assert ValidationConfig().max_update_norm is None
    assert load_settings  # the loader the CLI uses validated all of the above
