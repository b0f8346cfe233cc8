"""Privacy accounting, calibration, budgets and the signed privacy ledger."""

from fedrisk.privacy.accountant import (
    AccountantKind,
    IndependentMethod,
    accountant_version,
    epsilon_spent,
    independent_epsilon,
)
from fedrisk.privacy.budget import (
    Budget,
    BudgetDecision,
    PrivacyBudgetExceeded,
    PrivacyConfigError,
    check_delta,
    gate_round,
)
from fedrisk.privacy.calibration import PrivacyPlanError, calibrate_noise
from fedrisk.privacy.ledger import LedgerEntry, LedgerTampered, LedgerWriter, read_ledger
from fedrisk.privacy.manifest import ConsortiumManifest, InstitutionRecord
from fedrisk.privacy.mechanism import PoissonGaussian

__all__ = [
    "AccountantKind",
    "Budget",
    "BudgetDecision",
    "ConsortiumManifest",
    "IndependentMethod",
    "InstitutionRecord",
    "LedgerEntry",
    "LedgerTampered",
    "LedgerWriter",
    "PoissonGaussian",
    "PrivacyBudgetExceeded",
    "PrivacyConfigError",
    "PrivacyPlanError",
    "accountant_version",
    "calibrate_noise",
    "check_delta",
    "epsilon_spent",
    "gate_round",
    "independent_epsilon",
    "read_ledger",
]
