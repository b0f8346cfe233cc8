"""Risk models, losses and risk metrics."""

from .loss import (
    RiskLoss,
    asymmetric_cost_bce,
    balanced_pos_weight,
    build_loss,
    class_weighted_bce,
    focal_loss,
    resolve_pos_weight,
)
from .metrics import METRIC_KEYS, ks_statistic, risk_metrics
from .spec import LossKind, ModelKind, ModelSpec, OptimizerKind, TrainSpec
from .tabular import (
    TabularRiskModel,
    build_model,
    count_parameters,
    get_weights,
    predict_logits,
    predict_proba,
    set_weights,
    state_dict_from_weights,
)

__all__ = [
    "METRIC_KEYS",
    "LossKind",
    "ModelKind",
    "ModelSpec",
    "OptimizerKind",
    "RiskLoss",
    "TabularRiskModel",
    "TrainSpec",
    "asymmetric_cost_bce",
    "balanced_pos_weight",
    "build_loss",
    "build_model",
    "class_weighted_bce",
    "count_parameters",
    "focal_loss",
    "get_weights",
    "ks_statistic",
    "predict_logits",
    "predict_proba",
    "resolve_pos_weight",
    "risk_metrics",
    "set_weights",
    "state_dict_from_weights",
]
