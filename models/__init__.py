"""Risk models, losses and risk metrics."""
