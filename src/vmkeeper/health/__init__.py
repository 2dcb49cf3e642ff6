"""Health: the runbook's checks run concurrently, judged, and chained into one verdict."""
