"""Schema of the ``explain`` settings: explanations of the final global model.

Each institution explains the final model on its own validation rows and sends only
per-feature sums and its row count; the coordinator forms the row-weighted mean.

Notes
-----
What an explanation reply reveals: one institution's per-feature aggregates over its
validation rows (and, without secure aggregation, how many rows). Those rows are private
data, and the aggregates are released *without noise*:

- under ``privacy=dpsgd`` they are **not** covered by the DP-SGD guarantee (which covers
  only the noisy training steps and what is computed from the model afterwards);
- under ``secagg=secaggplus`` they are a release outside the masked sum (the coordinator
  sees each bank's aggregates; the row count is not sent, and banks are averaged with
  equal weight);
- under ``privacy=central`` they are outside the institution-level guarantee.

So by default (``enabled: null``) explanations run only when none of these is on. Setting
``explain.enabled=true`` opts in anyway; the run record then carries a warning saying the
release is not covered. ``false`` turns them off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedrisk.conf.privacy import PrivacyConfig, PrivacyMode
from fedrisk.conf.secagg import SecAggConfig
from fedrisk.data.schema import FeatureKind, TableSchema
from fedrisk.models.explain import ExplainMethod, FeatureGroup, feature_groups


def release_warning(privacy: PrivacyConfig, secagg: SecAggConfig) -> str | None:
    """Return the run record's warning for an opted-in release, or None without privacy."""
    gaps = []
    if privacy.mode is PrivacyMode.dpsgd:
        gaps.append("NOT covered by the record-level DP-SGD guarantee")
    if privacy.mode is PrivacyMode.central:
        gaps.append("NOT covered by the institution-level DP guarantee")
    if secagg.enabled:
        gaps.append(
            "sent outside the secure-aggregation masked sum (the coordinator sees each "
            "institution's aggregates)"
        )
    if not gaps:
        return None
    return (
        "explanations were computed on each institution's private validation rows and "
        f"released without noise (explain.enabled=true opted in): {'; '.join(gaps)}"
    )


@dataclass
class ExplainConfig:
    """Which explanations of the final global model to compute, and how.

    Parameters
    ----------
    enabled : bool | None (default: None)
        ``None``: explain only when the run uses no privacy mechanism (``privacy=none``,
        ``secagg=none``). ``True``: explain in every case (an explicit opt-in to an
        un-noised release under DP or secure aggregation; warned in the run record).
        ``False``: never.
    methods : list[ExplainMethod] (default: [permutation, integrated_gradients])
        Methods to compute.
    max_rows : int (default: 2000)
        Most validation rows each institution explains on (a seeded sample).
    repeats : int (default: 3)
        Permutations per feature for permutation importance.
    ig_steps : int (default: 32)
        Points on the Integrated Gradients path.
    top_k : int (default: 15)
        Features shown in ``explanations.png``.
    """

    enabled: bool | None = field(default=None, metadata={"help": "null=auto, true, false"})
    methods: list[ExplainMethod] = field(
        default_factory=lambda: [ExplainMethod.permutation, ExplainMethod.integrated_gradients],
        metadata={"help": "permutation, integrated_gradients"},
    )
    max_rows: int = field(default=2000, metadata={"help": "validation rows per institution"})
    repeats: int = field(default=3, metadata={"help": "permutations per feature"})
    ig_steps: int = field(default=32, metadata={"help": "Integrated Gradients path points"})
    top_k: int = field(default=15, metadata={"help": "features in explanations.png"})

    def __post_init__(self) -> None:
        self.methods = [ExplainMethod(m) for m in self.methods]
        if not self.methods:
            raise ValueError("`explain.methods` must list at least one method; got []")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"`explain.methods` must not repeat a method; got {[m.value for m in self.methods]}"
            )
        for name in ("max_rows", "repeats", "ig_steps", "top_k"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`explain.{name}` must be at least 1; got {value}")

    def active(self, *, private: bool) -> bool:
        """Whether explanations run, given whether a privacy mechanism is on."""
        if self.enabled is None:
            return not private
        return self.enabled


def under_privacy(privacy: PrivacyConfig, secagg: SecAggConfig) -> bool:
    """Whether the run uses a privacy mechanism an explanation release would bypass."""
    return privacy.mode is not PrivacyMode.none or secagg.enabled


def schema_groups(schema: TableSchema) -> list[FeatureGroup]:
    """Lay the table's features over the encoded columns (one-hot levels grouped).

    Raises
    ------
    ValueError
        If two features share a name.
    """
    return feature_groups(
        [(f.name, 1 if f.kind is FeatureKind.numeric else len(f.levels)) for f in schema.features]
    )
