"""Hydra entry point that builds a simulated consortium and runs Flower's simulation engine."""
