"""Schema of the ``consortium`` config group: who the institutions are and their data."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class InstitutionConfig:
    """One institution of a simulated consortium.

    Parameters
    ----------
    name : str
        Institution id, used in file names, ledgers and reports.
    rows : int
        Training rows the institution holds.
    segment_mix : list[float] (default: [0.5, 0.3, 0.2])
        Shares of prime, near-prime and subprime borrowers; must sum to 1.
    label_shift : float (default: 0.0)
        Offset on the true default logit at this institution.
    covariate_shift : float (default: 0.0)
        Shift of this institution's borrower features, in standard deviations.
    epsilon_budget : float | None (default: None)
        This institution's ε budget; ``None`` uses ``privacy.epsilon_budget``.
    delta : float | None (default: None)
        This institution's δ; ``None`` uses ``privacy.delta``.
    """

    name: str = field(default=MISSING, metadata={"help": "institution id"})
    rows: int = field(default=MISSING, metadata={"help": "training rows"})
    segment_mix: list[float] = field(
        default_factory=lambda: [0.5, 0.3, 0.2],
        metadata={"help": "prime, near-prime, subprime shares (sum to 1)"},
    )
    label_shift: float = field(default=0.0, metadata={"help": "offset on the default logit"})
    covariate_shift: float = field(default=0.0, metadata={"help": "feature shift in SDs"})
    epsilon_budget: float | None = field(
        default=None, metadata={"help": "this institution's ε budget (default: privacy's)"}
    )
    delta: float | None = field(
        default=None, metadata={"help": "this institution's δ (default: privacy's)"}
    )

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(
                f"`consortium.institutions[].name` must be letters, digits, '-' or '_'; "
                f"got {self.name!r}"
            )
        if self.rows < 1:
            raise ValueError(f"`rows` of institution {self.name} must be positive; got {self.rows}")
        if self.epsilon_budget is not None and not self.epsilon_budget > 0:
            raise ValueError(
                f"`epsilon_budget` of institution {self.name} must be positive; "
                f"got {self.epsilon_budget}"
            )
        if self.delta is not None and not 0.0 < self.delta < 1.0:
            raise ValueError(
                f"`delta` of institution {self.name} must be in (0, 1); got {self.delta}"
            )
        mix = list(self.segment_mix)
        if len(mix) != 3 or min(mix) < 0 or abs(sum(mix) - 1.0) > 1e-6:
            raise ValueError(
                f"`segment_mix` of institution {self.name} must be 3 non-negative shares "
                f"summing to 1; got {mix}"
            )


@dataclass
class GeneratedInstitutions:
    """Knobs that generate many heterogeneous institutions instead of listing them.

    Parameters
    ----------
    count : int
        Number of institutions (named ``bank_01`` …).
    total_rows : int
        Training rows over all institutions, split by a power law.
    size_exponent : float (default: 1.0)
        Power-law exponent of institution sizes; 0 gives equal sizes.
    min_rows : int (default: 200)
        Smallest institution.
    label_shift_sd : float (default: 0.0)
        Standard deviation of the per-institution default-logit offsets.
    covariate_shift_sd : float (default: 0.0)
        Standard deviation of the per-institution feature shifts.
    subprime_share_range : list[float] (default: [0.2, 0.2])
        Range from which each institution's subprime share is drawn; the rest is
        split 5:3 between prime and near-prime.
    """

    count: int = field(default=MISSING, metadata={"help": "number of institutions"})
    total_rows: int = field(default=MISSING, metadata={"help": "rows over all institutions"})
    size_exponent: float = field(default=1.0, metadata={"help": "power-law size exponent"})
    min_rows: int = field(default=200, metadata={"help": "smallest institution"})
    label_shift_sd: float = field(default=0.0, metadata={"help": "SD of logit offsets"})
    covariate_shift_sd: float = field(default=0.0, metadata={"help": "SD of feature shifts"})
    subprime_share_range: list[float] = field(
        default_factory=lambda: [0.2, 0.2], metadata={"help": "[low, high] subprime share"}
    )

    def __post_init__(self) -> None:
        if self.count < 2:
            raise ValueError(f"`consortium.generate.count` must be at least 2; got {self.count}")
        if self.total_rows < self.count * self.min_rows:
            raise ValueError(
                "`consortium.generate.total_rows` must be at least count × min_rows "
                f"({self.count * self.min_rows}); got {self.total_rows}"
            )
        bounds = list(self.subprime_share_range)
        if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1] <= 1:
            raise ValueError(
                "`consortium.generate.subprime_share_range` must be [low, high] within [0, 1]; "
                f"got {list(self.subprime_share_range)}"
            )


@dataclass
class ConsortiumConfig:
    """Schema of ``consortium/*.yaml``: either ``institutions`` or ``generate``.

    Parameters
    ----------
    name : str
        Consortium name, shown in reports.
    institutions : list[InstitutionConfig]
        Explicit institutions.
    generate : GeneratedInstitutions | None
        Generate institutions from knobs instead (used when ``institutions`` is empty).
    test_rows : int (default: 20000)
        Rows of the held-out test set drawn from the consortium-wide population.
    """

    name: str = field(default=MISSING, metadata={"help": "consortium name"})
    institutions: list[InstitutionConfig] = field(
        default_factory=list, metadata={"help": "explicit institutions"}
    )
    generate: GeneratedInstitutions | None = field(
        default=None, metadata={"help": "generate institutions from knobs"}
    )
    test_rows: int = field(default=20000, metadata={"help": "held-out test rows"})

    def __post_init__(self) -> None:
        if bool(self.institutions) == (self.generate is not None):
            raise ValueError(
                f"consortium {self.name!r} must set exactly one of `institutions` and `generate`"
            )
        names = [inst.name for inst in self.institutions]
        if len(set(names)) != len(names):
            raise ValueError(f"`consortium.institutions` names must be unique; got {names}")
        if self.institutions and len(self.institutions) < 2:
            raise ValueError("`consortium.institutions` must list at least 2 institutions; got 1")
        if self.test_rows < 100:
            raise ValueError(f"`consortium.test_rows` must be at least 100; got {self.test_rows}")
