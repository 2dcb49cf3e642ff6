"""Media: probing, input limits and video reversal in flat memory (PyAV in a worker process)."""
