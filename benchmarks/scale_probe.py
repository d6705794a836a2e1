"""A callback the scale benchmark adds (``+callbacks.first_step._target_=scale_probe.FirstStep``): prints the
seconds from the command's launch (``SCALE_T0``, set by the benchmark) to the first training step."""

import os
import time

import pytorch_lightning as pl


class FirstStep(pl.Callback):
    def __init__(self) -> None:
        self.done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.done:
            print(f"FIRST_STEP_S {time.time() - float(os.environ['SCALE_T0']):.2f}", flush=True)
            self.done = True
