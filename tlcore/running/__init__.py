"""Where runs are executed: the background worker, torchrun, a Ray cluster."""
