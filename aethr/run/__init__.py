"""One run of a workflow, as values: its state, the transition between steps, its spend."""
