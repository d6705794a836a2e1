"""beadseg: train, compare and deploy models that find and count dense microbeads."""

__version__ = "0.1.0"
