"""`vmkeeper watch`: the self-healing loop (state machine, incident store, loop, alerts)."""
