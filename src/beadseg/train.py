"""``python -m beadseg.train``: the same as ``beadseg-train``."""

from beadseg.cli.train import main

if __name__ == "__main__":
    main()
