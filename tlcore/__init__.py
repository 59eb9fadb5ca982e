"""Transfer Lab engine: data, models, freeze plans, training and evaluation, without any UI."""

__version__ = "0.1.0"
