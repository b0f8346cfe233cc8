"""Privacy accounting, calibration, budgets and the signed privacy ledger."""
