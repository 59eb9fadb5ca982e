"""One run trained: made ready and checked (prepare, preflight), its loop objects and steps, the loop as a
story with its parts (parts/), the feature-cache fast path, checkpoints, the learning-rate test."""
