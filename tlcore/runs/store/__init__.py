"""The run store, split by job: the database and its recovery, the rebuild from run folders, the runs' lifecycle,
the worker registry and the event log. `tlcore.runs.RunStore` puts them together behind one object."""

from __future__ import annotations
