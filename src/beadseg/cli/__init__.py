"""Thin command-line entry points: compose the config, call one function, say where results went."""
