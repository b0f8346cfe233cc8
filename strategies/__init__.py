"""Aggregation rules built on flwr.serverapp.strategy."""

from fedrisk.strategies import messages
from fedrisk.strategies.factory import WEIGHT_KEY, build_strategy

__all__ = ["WEIGHT_KEY", "build_strategy", "messages"]
