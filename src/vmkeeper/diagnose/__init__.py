"""Incident diagnosis: OOM kills from kernel logs (and, later, the support bundle)."""
