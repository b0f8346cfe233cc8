"""Schemas, validated loading, synthetic consortia, partitioners and encoding."""
