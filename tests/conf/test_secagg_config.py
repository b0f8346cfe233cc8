from __future__ import annotations

import json

import pytest

from fedrisk.conf.root import ConfigError, load_settings, settings_to_json
from fedrisk.conf.secagg import SecAggConfig, StageTimeouts
from fedrisk.secure.quantize import check_overflow
from fedrisk.simulations.entry import check_overrides


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"degree": 3}, "`secagg.degree` must be 0 or a positive even number; got 3"),
        ({"degree": -2}, "`secagg.degree` must be 0 or a positive even number; got -2"),
        ({"threshold": -1}, "`secagg.threshold` must be 0 (auto) or positive; got -1"),
        ({"bits": 16}, "`secagg.bits` must be 32 or 64; got 16"),
        ({"bits": 128}, "`secagg.bits` must be 32 or 64; got 128"),
        ({"clip": 0.0}, "`secagg.clip` must be positive and finite; got 0.0"),
        ({"clip": -1.0}, "`secagg.clip` must be positive and finite; got -1.0"),
        ({"clip": float("inf")}, "`secagg.clip` must be positive and finite; got inf"),
        ({"bits": 32, "scale_bits": -1}, "`secagg.scale_bits` must be in [0, 31); got -1"),
        ({"bits": 32, "scale_bits": 31}, "`secagg.scale_bits` must be in [0, 31); got 31"),
        ({"bits": 64, "scale_bits": 63}, "`secagg.scale_bits` must be in [0, 63); got 63"),
        ({"max_rows": 0}, "`secagg.max_rows` must be at least 1; got 0"),
        ({"timeouts": {"unmask": -1.0}}, "`secagg.timeouts.unmask` must be positive; got -1.0"),
        ({"timeouts": {"train": 0}}, "`secagg.timeouts.train` must be positive; got 0"),
        (
            {"timeouts": {"consistency": float("nan")}},
            "`secagg.timeouts.consistency` must be positive; got nan",
        ),
        ({"mode": "secagg"}, "'secagg' is not a valid SecAggMode"),
        ({"on_failure": "retry"}, "'retry' is not a valid FailurePolicy"),
    ],
)
def test_invalid_settings_are_rejected_with_the_key_and_value(fields: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        SecAggConfig(**fields)

    assert str(caught.value) == message


def test_valid_settings_are_accepted_and_normalised() -> None:
    config = SecAggConfig(
        mode="secaggplus", degree=4, threshold=3, bits=64, on_failure="stop", timeouts={"train": 5}
    )

    assert config.enabled
    assert config.on_failure.value == "stop"
    assert config.timeouts == StageTimeouts(train=5, consistency=60.0, unmask=60.0)
    assert not SecAggConfig().enabled


@pytest.mark.parametrize("institutions", [0, 1, 2])
def test_checked_for_rejects_fewer_than_three_institutions(institutions: int) -> None:
    with pytest.raises(ValueError, match=f"at least 3 institutions .*got {institutions}$"):
        SecAggConfig(mode="secaggplus").checked_for(institutions)


@pytest.mark.parametrize(
    ("degree", "threshold", "institutions", "shares"),
    [(0, 6, 5, 5), (0, 2, 5, 5), (8, 6, 5, 5), (0, 3, 7, 7), (6, 7, 6, 6)],
)
def test_checked_for_rejects_a_threshold_the_graph_cannot_meet(
    degree: int, threshold: int, institutions: int, shares: int
) -> None:
    config = SecAggConfig(mode="secaggplus", degree=degree, threshold=threshold)

    with pytest.raises(ValueError, match=f"half of the {shares} shares of one self-mask"):
        config.checked_for(institutions)


@pytest.mark.parametrize(
    ("degree", "threshold", "institutions"), [(0, 5, 5), (0, 3, 5), (4, 3, 20), (8, 5, 9)]
)
def test_checked_for_accepts_a_threshold_the_graph_can_meet(
    degree: int, threshold: int, institutions: int
) -> None:
    config = SecAggConfig(mode="secaggplus", degree=degree, threshold=threshold)

    assert config.checked_for(institutions) > 0


@pytest.mark.parametrize(
    ("bits", "max_rows", "institutions"), [(32, 2**30, 2), (32, 2**29, 4), (64, 2**61, 4)]
)
def test_checked_for_rejects_row_counts_whose_sum_could_overflow(
    bits: int, max_rows: int, institutions: int
) -> None:
    config = SecAggConfig(mode="secaggplus", bits=bits, max_rows=max_rows)
    institutions = max(institutions, 3)

    with pytest.raises(ValueError, match=r"`secagg.max_rows` × institutions must stay below"):
        config.checked_for(institutions)


def test_threshold_valid_for_the_effective_full_graph_is_accepted_with_a_large_degree() -> None:
    # 5 institutions, degree 8 ≥ 4 neighbours: full graph, 5 shares per self-mask, so a
    # threshold of 3 is a strict majority of the shares that actually exist.
    config = SecAggConfig(mode="secaggplus", degree=8, threshold=3)

    assert config.checked_for(5) == 58  # 5 × 4 × 2^58 < 2^63 ≤ 5 × 4 × 2^59


def test_checked_for_accepts_row_counts_just_below_the_limit() -> None:
    config = SecAggConfig(mode="secaggplus", bits=32, max_rows=2**31 // 3 - 1, clip=1.0)

    assert config.checked_for(3) == 29  # 3 × 1 × 2^29 < 2^31 ≤ 3 × 1 × 2^30


@pytest.mark.parametrize(
    ("bits", "clip", "institutions"), [(32, 4.0, 5), (32, 4.0, 3), (32, 0.01, 100), (64, 4.0, 50)]
)
def test_checked_for_picks_the_largest_scale_bits_that_cannot_overflow(
    bits: int, clip: float, institutions: int
) -> None:
    scale = SecAggConfig(mode="secaggplus", bits=bits, clip=clip).checked_for(institutions)

    check_overflow(clip=clip, count=institutions, bits=bits, scale_bits=scale)
    with pytest.raises(ValueError):
        check_overflow(clip=clip, count=institutions, bits=bits, scale_bits=scale + 1)


def test_checked_for_keeps_a_configured_scale_and_checks_it() -> None:
    assert SecAggConfig(mode="secaggplus", bits=32, scale_bits=12).checked_for(5) == 12
    with pytest.raises(ValueError, match=r"must stay below 2\^\(bits−1\)"):
        SecAggConfig(mode="secaggplus", bits=32, scale_bits=27).checked_for(5)


def test_checked_for_rejects_a_clip_no_scale_can_hold() -> None:
    with pytest.raises(ValueError, match=r"raise `secagg.bits` to 64"):
        SecAggConfig(mode="secaggplus", bits=32, clip=1e9).checked_for(5)


def _secagg_mapping(*overrides: str) -> dict:
    return json.loads(settings_to_json(check_overrides(["secagg=secaggplus", *overrides])))


def test_secagg_composes_with_the_default_consortium() -> None:
    settings = load_settings(_secagg_mapping())

    assert settings.secagg.enabled and settings.secagg.bits == 64


def test_defaults_are_the_active_adversary_variant() -> None:
    # consistency round on; threshold 0 = above two thirds of a secret's shares
    settings = load_settings(_secagg_mapping())

    for secagg in (settings.secagg, SecAggConfig()):
        assert secagg.consistency_check is True
        assert secagg.threshold == 0


def test_central_privacy_with_server_side_clipping_is_rejected_with_one_line() -> None:
    mapping = _secagg_mapping()
    mapping["privacy"]["mode"] = "central"
    mapping["privacy"]["central_clipping_side"] = "server"

    with pytest.raises(ConfigError) as caught:
        load_settings(mapping)

    message = str(caught.value)
    assert message.startswith("`privacy.central_clipping_side` must be client")
    assert message.endswith("got server")
    assert "\n" not in message


def test_central_privacy_with_client_side_clipping_is_accepted() -> None:
    mapping = _secagg_mapping()
    mapping["privacy"]["mode"] = "central"
    mapping["privacy"]["central_clipping_side"] = "client"

    settings = load_settings(mapping)

    assert settings.secagg.enabled and settings.privacy.mode.value == "central"


def test_secagg_clip_below_the_central_clipping_norm_is_rejected() -> None:
    mapping = _secagg_mapping()
    mapping["privacy"].update(
        mode="central", central_clipping_side="client", central_clipping_norm=2.5
    )
    mapping["secagg"]["clip"] = 2.0

    with pytest.raises(ConfigError) as caught:
        load_settings(mapping)

    assert str(caught.value) == (
        "`secagg.clip` must be at least `privacy.central_clipping_norm` (a clipped update's "
        "coordinates reach it); got 2.0 < 2.5"
    )


def test_secagg_invalid_value_through_the_root_config_is_one_line() -> None:
    mapping = _secagg_mapping()
    mapping["secagg"]["degree"] = 3

    with pytest.raises(ConfigError) as caught:
        load_settings(mapping)

    assert str(caught.value) == "`secagg.degree` must be 0 or a positive even number; got 3"


def test_secagg_threshold_checked_against_the_consortium_size() -> None:
    with pytest.raises(ConfigError, match="half of the 5 shares of one self-mask"):
        check_overrides(["secagg=secaggplus", "secagg.threshold=6"])


@pytest.mark.parametrize("threshold", [2, 6])
def test_threshold_outside_the_majority_of_a_sparse_graphs_shares_is_rejected(
    threshold: int,
) -> None:
    # 10 institutions, degree 4: each self-mask has 5 shares (4 neighbours + its own).
    config = SecAggConfig(mode="secaggplus", degree=4, threshold=threshold)

    with pytest.raises(ValueError) as caught:
        config.checked_for(10)

    assert str(caught.value) == (
        "`secagg.threshold` must exceed half of the 5 shares of one self-mask (the institution "
        f"and its 4 neighbours) and not exceed them; got {threshold}"
    )
