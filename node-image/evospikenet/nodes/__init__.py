"""Brain node processes: the shared runtime, the Vision node and the PFC node."""
