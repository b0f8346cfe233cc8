"""The `explain` settings: validation messages and when explanations run."""

from __future__ import annotations

import pytest

from fedrisk.conf.explain import ExplainConfig, release_warning, schema_groups, under_privacy
from fedrisk.conf.privacy import PrivacyConfig
from fedrisk.conf.root import ConfigError
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.data.borrowers import credit_schema
from fedrisk.models.explain import ExplainMethod
from fedrisk.simulations.entry import check_overrides


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("explain.methods=[]", "`explain.methods` must list at least one method; got []"),
        (
            "explain.methods=[permutation,permutation]",
            "`explain.methods` must not repeat a method; got ['permutation', 'permutation']",
        ),
        ("explain.max_rows=0", "`explain.max_rows` must be at least 1; got 0"),
        ("explain.ig_steps=-1", "`explain.ig_steps` must be at least 1; got -1"),
        ("explain.top_k=0", "`explain.top_k` must be at least 1; got 0"),
    ],
)
def test_bad_explain_settings_fail_with_one_line(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_overrides([override])

    assert str(caught.value) == message


def test_unknown_method_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="permutation, integrated_gradients"):
        check_overrides(["explain.methods=[shap]"])


def test_explanations_run_without_privacy_and_only_by_opt_in_with_it() -> None:
    auto, on, off = ExplainConfig(), ExplainConfig(enabled=True), ExplainConfig(enabled=False)

    assert auto.active(private=False) and not auto.active(private=True)
    assert on.active(private=True) and on.active(private=False)
    assert not off.active(private=False)
    assert auto.methods == [ExplainMethod.permutation, ExplainMethod.integrated_gradients]


def test_every_privacy_mechanism_counts_and_the_warning_names_it() -> None:
    plain, secagg = SecAggConfig(), SecAggConfig(mode="secaggplus")

    assert not under_privacy(PrivacyConfig(), plain)
    assert release_warning(PrivacyConfig(), plain) is None
    for mode, phrase in (("dpsgd", "DP-SGD"), ("central", "institution-level DP")):
        assert under_privacy(PrivacyConfig(mode=mode), plain)
        assert phrase in (release_warning(PrivacyConfig(mode=mode), plain) or "")
    assert under_privacy(PrivacyConfig(), secagg)
    assert "masked sum" in (release_warning(PrivacyConfig(), secagg) or "")


def test_schema_groups_keep_one_hot_levels_together() -> None:
    groups = schema_groups(credit_schema())

    by_name = {g.name: g.columns for g in groups}
    assert len(groups) == 17
    assert len(by_name["region"]) == 5 and len(by_name["income"]) == 1
    assert sorted(c for g in groups for c in g.columns) == list(
        range(sum(map(len, by_name.values())))
    )
