"""The auditor's tools: verify ledgers and recompute privacy from files alone."""
