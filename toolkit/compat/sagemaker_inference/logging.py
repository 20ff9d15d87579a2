"""The library logger of sagemaker_inference ("sagemaker-inference")."""

from __future__ import annotations

import logging as _logging

NAME = "sagemaker-inference"


def get_logger() -> _logging.Logger:
    return _logging.getLogger(NAME)


def configure_logger() -> None:
    """Give the library logger a stream handler with timestamps."""
    handler = _logging.StreamHandler()
    handler.setFormatter(_logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    get_logger().addHandler(handler)
