"""A run's description below its config: freeze plans as data (and applying them), domain adaptation's settings
and target pictures."""
