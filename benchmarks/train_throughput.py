"""Images per second of beadseg's Lightning training loop against a plain PyTorch loop.

Same model, data, loss, optimiser and batch size, measured in one run and alternated (plain, Lightning,
plain, Lightning, ...) so that both see the same machine state; the best of the repeats is reported.

    python benchmarks/train_throughput.py                 # CPU, full precision
    python benchmarks/train_throughput.py --amp           # GPU with 16-bit mixed precision
"""

from __future__ import annotations

import argparse
import time

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from beadseg.config import CONFIG_DIR
from beadseg.datasets import build_datamodule


class StepTimer(pl.Callback):
    """Wall time from the start of batch ``warmup`` to the end of training."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start = warmup, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.elapsed = time.perf_counter() - self.start

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()


def build(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["paths.output_dir=/tmp/beadseg-benchmark", "data.output_dir=null", *overrides])
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    return cfg, datamodule


def plain_loop(cfg, datamodule, steps: int, warmup: int, device: str, amp: bool) -> float:
    module = instantiate(cfg.module).to(device)  # the same net and loss, driven by hand
    net, loss_fn = module.net, module.loss_fn
    optimizer = instantiate(cfg.optimizer)(params=net.parameters())
    scaler = torch.amp.GradScaler(enabled=amp)
    net.train()
    batches = iter(datamodule.train_dataloader())
    for step in range(steps):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(datamodule.train_dataloader())
            batch = next(batches)
        images, masks = batch["image"].to(device, non_blocking=True), batch["mask"].to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=amp):
            loss = loss_fn(net(images), masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if device == "cuda":
        torch.cuda.synchronize()
    return (steps - warmup) * datamodule.batch_size / (time.perf_counter() - start)


def lightning_loop(cfg, datamodule, steps: int, warmup: int, device: str, amp: bool) -> float:
    module = instantiate(cfg.module)
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision="16-mixed" if amp else "32-true",
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    return (steps - warmup) * datamodule.batch_size / timer.elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--amp", action="store_true", help="16-bit mixed precision (GPU)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=attention_unet data.batch_size=16")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg, datamodule = build(["data.num_workers=0", "data.patches_per_image=16", *args.overrides])
    results: dict[str, list[float]] = {"plain PyTorch": [], "Lightning (beadseg)": []}
    for _ in range(args.repeats):
        pl.seed_everything(0, verbose=False)
        results["plain PyTorch"].append(plain_loop(cfg, datamodule, args.steps, args.warmup, device, args.amp))
        pl.seed_everything(0, verbose=False)
        results["Lightning (beadseg)"].append(lightning_loop(cfg, datamodule, args.steps, args.warmup, device, args.amp))
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\n{name}, {'AMP fp16' if args.amp else 'fp32'}, model {cfg.model._target_.rsplit('.', 1)[-1]}, "
          f"batch {cfg.data.batch_size} x {cfg.data.patch_size}^2, {args.steps - args.warmup} timed steps, best of {args.repeats}")
    plain = max(results["plain PyTorch"])
    print("| loop | images/s | ratio to plain |\n|---|---|---|")
    for loop, rates in results.items():
        print(f"| {loop} | {max(rates):.1f} | {max(rates) / plain:.3f} |")


if __name__ == "__main__":
    main()
