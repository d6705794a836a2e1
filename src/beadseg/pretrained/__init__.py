"""The bead model shipped with beadseg: used by beadseg-predict and beadseg-eval when no ckpt is given.

How it was made (command, data, scores) is in README.md beside it.
"""

from pathlib import Path

CHECKPOINT = Path(__file__).resolve().with_name("beads_unet.ckpt")
