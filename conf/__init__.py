"""Hydra configuration tree and its structured-config schemas (packaged as fedrisk.conf)."""
