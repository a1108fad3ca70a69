"""Where a run's logs land, and logs that stay correct when one process trains many times.

RecBole's ``init_logger`` writes ``./log/<Model>/<name>.log`` and ends with ``logging.basicConfig``, which
does nothing while the root logger has handlers: a second training in the same process (every bench cell
after the first) kept logging into the first run's file, and its TensorBoard folder
(``./log_tensorboard/<name>``, named after that file) was the first run's too. Here:

* :func:`init_run_logger` is RecBole's logger set up again on every call; with ``run_dir`` the log is
  ``<run_dir>/log/<name>.log`` and TensorBoard writes to ``<run_dir>/log_tensorboard/<name>``;
* :func:`apply` points RecBole's trainer at that TensorBoard folder (``get_tensorboard``);
* :func:`tee_output` copies what a pipeline stage prints into a log file as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_stock_get_tensorboard = None


def log_name(config: Any) -> str:
    """RecBole's log file stem: ``<Model>-<dataset>-<time>-<md5 of the config values>``."""
    from recbole.utils import get_local_time

    values = "".join(str(value) for value in config.final_config_dict.values())
    digest = hashlib.md5(values.encode("utf-8")).hexdigest()[:6]
    return f"{config['model']}-{config['dataset']}-{get_local_time()}-{digest}"


def init_run_logger(config: Any, run_dir: str | Path | None = None) -> Path:
    """Set up RecBole's root logger (console + file) afresh; returns the log file.

    Without ``run_dir`` the file is where RecBole puts it (``./log/<Model>/``); TensorBoard then also
    follows RecBole (``./log_tensorboard/<name>``).
    """
    from colorama import init
    from colorlog import ColoredFormatter
    from recbole.utils.logger import RemoveColorFilter, log_colors_config

    init(autoreset=True)
    name = log_name(config)
    if run_dir is None:
        path = Path("log") / config["model"] / f"{name}.log"
        tensorboard = None
    else:
        path = Path(run_dir) / "log" / f"{name}.log"
        tensorboard = Path(run_dir) / "log_tensorboard" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    level = _LEVELS.get(str(config["state"] or "info").lower(), logging.INFO)

    file_handler = logging.FileHandler(path)
    file_handler.setLevel(level)
    file_handler.setFormatter(
        logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S")
    )
    file_handler.addFilter(RemoveColorFilter())
    file_handler.tensorboard_dir = tensorboard
    console = logging.StreamHandler()
    console.setLevel(level)
    console.setFormatter(
        ColoredFormatter(
            "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s",
            "%d %b %H:%M",
            log_colors=log_colors_config,
        )
    )
    # force=True closes and removes the previous run's handlers (plain basicConfig would keep them).
    logging.basicConfig(level=level, handlers=[console, file_handler], force=True)
    unknown = getattr(config, "unknown_keys", None)
    if unknown:  # printed once when the config was built; into every run's log file as well
        from recbole_hnlm.config_checks import describe_unknown

        fields = {"msg": describe_unknown(unknown), "levelno": logging.WARNING, "levelname": "WARNING"}
        file_handler.handle(logging.makeLogRecord(fields))
    return path


def get_tensorboard(logger: logging.Logger) -> Any:
    """RecBole's ``get_tensorboard``, writing into the run folder when the log file is there."""
    for handler in logging.getLogger().handlers:
        folder = getattr(handler, "tensorboard_dir", None)
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter(str(folder))
    return _stock_get_tensorboard(logger)


def apply() -> None:
    """Make RecBole's trainer create its TensorBoard writer through :func:`get_tensorboard` (idempotent)."""
    global _stock_get_tensorboard
    if _stock_get_tensorboard is not None:
        return
    import recbole.trainer.trainer as trainer

    _stock_get_tensorboard = trainer.get_tensorboard
    trainer.get_tensorboard = get_tensorboard


class _Tee:
    def __init__(self, stream: TextIO, copy: TextIO, path: Path) -> None:
        self.stream, self.copy, self.path = stream, copy, path

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.copy.flush()
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def tee_output(path: str | Path) -> Iterator[Path]:
    """Everything printed to stdout inside the block is also appended to ``path`` (progress bars, which
    go to stderr, are not). Nested blocks on the same file write each line once."""
    path = Path(path).resolve()
    if isinstance(sys.stdout, _Tee) and sys.stdout.path == path:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as copy:
        copy.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
        stdout = sys.stdout
        sys.stdout = _Tee(stdout, copy, path)
        try:
            yield path
        finally:
            sys.stdout = stdout
