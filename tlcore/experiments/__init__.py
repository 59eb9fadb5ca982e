"""Runs side by side: comparison grids and their verdicts (paired statistics), time estimates, model
ranking, the user's experiment, run labels, the report."""
