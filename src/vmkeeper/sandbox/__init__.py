"""The sandbox: the runbook's standard VM, replicated on loopback ports under one folder."""
