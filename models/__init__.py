"""Risk models, losses and risk metrics."""

from .loss import balanced_pos_weight, class_weighted_bce, resolve_pos_weight
from .metrics import METRIC_KEYS, ks_statistic, risk_metrics
from .spec import ModelKind, ModelSpec, OptimizerKind, TrainSpec
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
    "ModelKind",
    "ModelSpec",
    "OptimizerKind",
    "TabularRiskModel",
    "TrainSpec",
    "balanced_pos_weight",
    "build_model",
    "class_weighted_bce",
    "count_parameters",
    "get_weights",
    "ks_statistic",
    "predict_logits",
    "predict_proba",
    "resolve_pos_weight",
    "risk_metrics",
    "set_weights",
    "state_dict_from_weights",
]
