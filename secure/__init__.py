"""Cryptographic primitives only: keys, masks, Shamir sharing, quantisation, certificates."""
