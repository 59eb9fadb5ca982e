"""The basics every layer uses: events and cancelling, paths and files read defensively, typed plain data, the
schema of settings, strategy and schedule names, the device runtime, collectives, a run folder's file names."""
