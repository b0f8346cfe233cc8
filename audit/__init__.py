"""The auditor's tools: verify ledgers and recompute privacy from files alone."""

from fedrisk.audit.report import write_report
from fedrisk.audit.verify import AuditInputError, AuditReport, Check, audit_path

__all__ = ["AuditInputError", "AuditReport", "Check", "audit_path", "write_report"]
