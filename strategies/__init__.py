"""Aggregation rules built on flwr.serverapp.strategy."""
