"""Training: the LightningModule, callbacks, the task function and the sweep summary."""
