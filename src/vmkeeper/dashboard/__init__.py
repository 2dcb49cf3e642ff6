"""The dashboard: server-rendered pages the agent serves at ``/`` (the API stays under /v1)."""
