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
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig

from beadseg.config import CONFIG_DIR
from beadseg.settings import SettingError, check_against_defaults, check_settings

# BeadDataError, CheckpointError, SettingError are ValueErrors; OSError: unwritable, missing or wrong-kind paths
HANDLED = (ValueError, OSError, ImportError)
PLAIN_KEY = re.compile(r"^[+~]{0,2}[\w.\-/@]+=")


def quote_values(arguments: list[str]) -> list[str]:
    """``key=value with spaces`` -> ``key='value with spaces'`` (values already quoted are left alone)."""
    quoted = []
    for argument in arguments:
        match = PLAIN_KEY.match(argument)
        value = argument[match.end():] if match else ""
        needs = value and (any(c.isspace() for c in value) or not value.isascii())
        if match and needs and value[0] not in "'\"[{" and "'" not in value:
            argument = f"{argument[: match.end()]}'{value}'"
        quoted.append(argument)
    return quoted


def in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class _DropTips(logging.Filter):
    """Lightning's advertising and its accelerator roll call (``GPU available: False``) on every run."""

    NOISE = ("Tip:", "GPU available:", "TPU available:", "HPU available:", "IPU available:")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(noise in record.getMessage() for noise in self.NOISE)


def message(error: BaseException) -> str | None:
    """The one line for an error beadseg handles (unwrapping Hydra's ``Error in call to target``), else None."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(error, InstantiationException) and isinstance(error.__cause__, (*HANDLED, MissingMandatoryValue)):
        error = error.__cause__
    if isinstance(error, MissingMandatoryValue):
        key = getattr(error, "full_key", None) or str(error).split(":")[-1].strip()
        return f"{key} has no value: give {key}=..."
    return str(error) if isinstance(error, HANDLED) else None


def quiet_libraries() -> None:
    """Keep the console for what matters: no deprecation notes from inside the libraries, no advertising."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated.*", category=FutureWarning)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropTips())
    logging.getLogger("tensorboard").setLevel(logging.WARNING)


def _flat_keys(node, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig as Node

    keys = []
    for key in node.keys() if isinstance(node, Node) else ():
        name = str(key)
        if name.startswith("_"):  # _target_, _partial_: not settings a user types
            continue
        path = f"{prefix}.{name}" if prefix else name
        keys.append(path)
        try:
            keys += _flat_keys(node._get_node(key), path)
        except Exception:  # an interpolation that cannot resolve here is still a key
            pass
    return keys


def preflight(config_name: str, arguments: list[str]) -> str | None:
    """What stops a run before it starts, in one line, or None: an override whose key the composed config does not
    have (``optimzer.lr=1e-3``) or that adds (``+``) under a node that does not exist, with the nearest valid keys;
    a run directory that cannot be written. A sweep is checked at its first value; runs with other command-line
    flags (``--help``, ``--config-dir``) are left to Hydra."""
    import difflib

    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import ConfigCompositionException, HydraException
    from omegaconf import OmegaConf

    flags = [a for a in arguments if a.startswith("-")]
    if any(flag not in ("-m", "--multirun") for flag in flags):
        return None
    try:
        parsed = OverridesParser.create().parse_overrides([a for a in arguments if not a.startswith("-")])
    except HydraException:
        return None  # a syntax error: Hydra's own message says where
    checked, added = [], []
    for override in parsed:
        value = (
            next(override.sweep_string_iterator())
            if override.is_sweep_override()
            else override.get_value_element_as_str()
        )
        prefix = {"add": "+", "force_add": "++", "del": "~"}.get(override.type.name.lower(), "")
        checked.append(f"{prefix}{override.key_or_group}={value}" if prefix != "~" else f"~{override.key_or_group}")
        if prefix == "+" and "." in override.key_or_group:
            added.append(override.key_or_group)
    groups = {path.name for path in Path(CONFIG_DIR).iterdir() if path.is_dir()}
    deleted = next((o.key_or_group for o in parsed if o.type.name.lower() == "del" and o.key_or_group in groups), None)
    if deleted:
        return (f"~{deleted}: {deleted} is a config group this command needs; choose one of its options instead "
                f"({deleted}=NAME; beadseg-{config_name} --help lists them)")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        try:
            full = compose(config_name, overrides=checked, return_hydra_config=True)
            cfg = compose(config_name, overrides=[c for c in checked if not c.startswith("+")],
                          return_hydra_config=True) if added else full
        except ValueError as error:  # Hydra's defaults list refuses it
            return f"the overrides cannot be composed: {str(error).splitlines()[0] if str(error) else error!r}"
        except ConfigCompositionException as error:
            if "Could not override" not in str(error):
                return None  # e.g. an unknown group option: Hydra's message lists the options
            wrong = next((o.key_or_group for o in parsed if f"'{o.key_or_group}'" in str(error)), None)
            if wrong is None:
                return None
            cfg, reason = compose(config_name), f"no setting {wrong}"
        else:
            wrong = next((key for key in added if OmegaConf.select(cfg, key.rsplit(".", 1)[0]) is None), None)
            if wrong is None:
                return mistyped(config_name, full, parsed, checked) or unwritable(
                    Path(full.hydra.sweep.dir if flags else full.hydra.run.dir))
            parent, leaf = wrong.rsplit(".", 1)
            reason = f"+{wrong}: there is no {parent} to add {leaf} to, so it would be ignored"
    keys = [key for key in _flat_keys(cfg) if not key.startswith("hydra")]
    near = difflib.get_close_matches(wrong, keys, n=3, cutoff=0.6)
    return reason + (f" (did you mean {' or '.join(near)}?)" if near else "")


def check_registered(cfg: DictConfig, command: str) -> None:
    """The settings that name an entry of a registry (its keys are the one list of those names), checked through
    it: export's ``format`` (:data:`~beadseg.packaging.export.EXPORTERS`), predict's ``label_format``
    (:data:`~beadseg.formats.images.LABEL_FORMATS`); a :class:`~beadseg.settings.SettingError` names the key."""
    if command == "export":
        from beadseg.packaging.export import exporter_for

        exporter_for(cfg.get("format"))
    elif command == "predict":
        from beadseg.formats.images import label_suffix

        label_suffix(cfg.get("label_format"))


def mistyped(config_name: str, full: DictConfig, parsed: list, checked: list[str]) -> str | None:
    """The first setting, in one line, whose value is out of range (:func:`beadseg.settings.check_settings`) or not
    of its default's kind (``loss.weights.bce=abc``), or None; checked before Hydra makes the run directory."""
    from hydra import compose

    choices = set(full.hydra.runtime.choices)
    groups = [line for o, line in zip(parsed, checked) if o.key_or_group in choices]
    keys = [o.key_or_group for o in parsed
            if o.key_or_group not in choices and not o.key_or_group.startswith("hydra") and not o.is_delete()]
    try:
        check_settings(full, config_name)
        check_registered(full, config_name)
        if keys:
            defaults = compose(config_name, overrides=groups)
            check_against_defaults(full, defaults, keys, config_name)
    except SettingError as error:
        return str(error)
    except Exception:  # anything else (a composition the run itself reports) is the run's to report, in context
        return None
    return None


def continue_in_run(config_name: str, arguments: list[str]) -> list[str]:
    """``beadseg-train ckpt_path=<run>/checkpoints/last.ckpt`` continues in ``<run>`` (its checkpoints, TensorBoard
    events and ``result.json`` stay one run) unless ``hydra.run.dir`` says otherwise or a sweep runs."""
    given = {argument.split("=", 1)[0]: argument.split("=", 1)[1] for argument in arguments if "=" in argument}
    if config_name != "train" or not given.get("ckpt_path") or "hydra.run.dir" in given or \
            any(argument in ("-m", "--multirun") for argument in arguments):
        return arguments
    checkpoint = Path(given["ckpt_path"].strip("'\"")).expanduser().absolute()
    run = checkpoint.parent.parent
    if checkpoint.parent.name != "checkpoints" or not any((run / made).is_file() for made in (".hydra/config.yaml",
                                                                                             "result.json")):
        return arguments
    print(f"beadseg-train: resuming in {run} (its checkpoints, TensorBoard and result.json continue there)",
          file=sys.stderr)
    return [*arguments, f"hydra.run.dir={run}"]


def unwritable(run_dir: Path) -> str | None:
    """Why the run directory cannot be made (a read-only or foreign folder on its way), or None."""
    existing = next((folder for folder in (run_dir, *run_dir.absolute().parents) if folder.exists()), None)
    if existing is None or (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        return None
    what = "is not a folder" if not existing.is_dir() else "cannot be written (read-only?)"
    return f"cannot make the run directory {run_dir}: {existing} {what}; give hydra.run.dir=<a writable folder>"


def refuse_missing_values(cfg: DictConfig) -> None:
    """The first setting left at ``???`` (``input``, ``data.root``), as one line naming it, before the command
    imports its libraries (seconds) or reads anything."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    def missing(node: DictConfig, prefix: str = ""):  # interpolations stay unresolved (no library import)
        for key in map(str, node.keys()):
            path = f"{prefix}{key}"
            child = node._get_node(key)
            if OmegaConf.is_missing(node, key):
                yield path
            elif not OmegaConf.is_interpolation(node, key) and isinstance(child, DictConfig):
                yield from missing(child, f"{path}.")

    key = next(missing(cfg), None)
    if key is not None:
        raise MissingMandatoryValue(f"Missing mandatory value: {key}")


def record_failure(line: str) -> None:
    """A training run stopped by a handled error still says so: ``result.json`` (status failed, the error) in its
    run directory, as a sweep records its failed jobs."""
    import json

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    try:
        output_dir = Path(HydraConfig.get().runtime.output_dir)
        result = output_dir / "result.json"
        record = json.loads(result.read_text()) if result.is_file() else {}
        result.write_text(json.dumps({**record, "status": "failed", "error": line}, indent=2))
    except (OSError, ValueError):
        pass  # an unwritable run directory may be the error itself


def beadseg_app(config_name: str) -> Callable:
    """``@beadseg_app("predict")`` over ``def main(cfg)``: the command's entry point."""

    def decorate(task: Callable[[DictConfig], object]) -> Callable[[], object]:
        @functools.wraps(task)
        def handled(cfg: DictConfig):
            try:
                refuse_missing_values(cfg)
                check_settings(cfg, config_name)  # every command's settings, before any work
                check_registered(cfg, config_name)
                return task(cfg)
            except Exception as error:
                line = message(error)
                if line is None or os.environ.get("HYDRA_FULL_ERROR") == "1" or in_sweep():
                    raise
                print(f"beadseg-{cfg.get('task_name', config_name)}: error: {line}", file=sys.stderr)
                if config_name == "train":
                    record_failure(line)
                sys.exit(1)

        app = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(handled)

        @functools.wraps(task)
        def entry():
            quiet_libraries()
            sys.argv[1:] = continue_in_run(config_name, quote_values(sys.argv[1:]))
            problem = preflight(config_name, sys.argv[1:])
            if problem:
                print(f"beadseg-{config_name}: error: {problem}", file=sys.stderr)
                sys.exit(1)
            return app()

        return entry

    return decorate
