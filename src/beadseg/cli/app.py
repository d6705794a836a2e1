"""What every beadseg command shares: a Hydra app whose handled errors print one message, not a traceback.

Values holding spaces or non-ASCII letters (``input=/data/my beads``) are quoted for Hydra's override parser;
a handled error (bad data, a bad setting, a refused checkpoint) prints ``beadseg-X: error: ...`` and exits with 1.
``HYDRA_FULL_ERROR=1`` shows the traceback; in a sweep (``-m``) the error is left to the sweep's record.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import warnings
from typing import Callable

import hydra
from omegaconf import DictConfig

from beadseg.config import CONFIG_DIR
from beadseg.data.microscope import configure as configure_reading

HANDLED = (ValueError, FileExistsError, FileNotFoundError, ImportError)  # BeadDataError, CheckpointError, ConfigError: ValueError
PLAIN_KEY = re.compile(r"^[+~]{0,2}[\w.\-/@]+=")


def quote_values(arguments: list[str]) -> list[str]:
    """``key=value with spaces`` -> ``key='value with spaces'`` (values already quoted are left alone)."""
    quoted = []
    for argument in arguments:
        match = PLAIN_KEY.match(argument)
        value = argument[match.end():] if match else ""
        needs = value and (any(c.isspace() for c in value) or not value.isascii())
        if needs and value[0] not in "'\"[{" and "'" not in value:
            argument = f"{argument[: match.end()]}'{value}'"
        quoted.append(argument)
    return quoted


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_libraries() -> None:
    """Keep the console for what matters: no deprecation notes from inside the libraries, no advertising."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated.*", category=FutureWarning)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    logging.getLogger("tensorboard").setLevel(logging.WARNING)


def beadseg_app(config_name: str) -> Callable:
    """``@beadseg_app("predict")`` over ``def main(cfg)``: the command's entry point."""

    def decorate(task: Callable[[DictConfig], object]) -> Callable[[], object]:
        @functools.wraps(task)
        def handled(cfg: DictConfig):
            try:
                configure_reading(cfg.get("image"))
                return task(cfg)
            except HANDLED as error:
                if os.environ.get("HYDRA_FULL_ERROR") == "1" or in_sweep():
                    raise
                print(f"beadseg-{cfg.get('task_name', config_name)}: error: {error}", file=sys.stderr)
                sys.exit(1)

        app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(handled)

        @functools.wraps(task)
        def entry():
            quiet_libraries()
            sys.argv[1:] = quote_values(sys.argv[1:])
            return app()

        return entry

    return decorate
