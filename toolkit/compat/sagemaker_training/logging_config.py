"""Stand-in for ``sagemaker_training.logging_config``: the logger scripts ask for."""

from __future__ import annotations

import logging

from toolkit.compat.importing import module_getattr

__getattr__ = module_getattr(__name__, ("get_logger",))


def get_logger() -> logging.Logger:
    """The logger the real package logs to, by the same name."""
    return logging.getLogger("sagemaker-training-toolkit")
