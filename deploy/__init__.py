"""Deployment: provision a consortium's keys, certificates and manifest."""

from fedrisk.deploy.command import USAGE, consortium_command
from fedrisk.deploy.provision import ConsortiumSpec, SpecError, provision

__all__ = ["USAGE", "ConsortiumSpec", "SpecError", "consortium_command", "provision"]
