"""``beadseg-pack data.root=DIR out=PACK``: write a data set into litdata shards, trained from with data=packed."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from beadseg.cli.app import beadseg_app


@beadseg_app("pack")
def main(cfg: DictConfig) -> None:
    from beadseg.datasets.packed import pack

    meta = pack(instantiate(cfg.data.source), cfg.out, cfg.chunk_bytes, cfg.workers)
    option = "packed_frames" if meta["kind"] == "frames" else "packed"
    print(
        f"beadseg-pack: {len(meta['rows'])} {meta['kind']} -> {cfg.out}; train with: "
        f"beadseg-train data={option} data.input_dir={cfg.out}"
        + (" task=classify" if option == "packed_frames" else "")
    )


if __name__ == "__main__":
    main()
