"""sagemaker-toolkit's stand-in for ``sagemaker_containers`` (sagemaker-containers 2.8).

The real package no longer imports on Python 3.10 and later (it uses ``collections.Mapping`` and
``distutils``). Covered: ``training_env()`` and, in ``beta.framework``, ``training_env``,
``content_types``, ``encoders``, ``env`` (``TrainingEnv`` and the paths), ``errors`` and
``worker.Response``; ``modules`` and ``transformer`` import (scripts import them beside the others)
but provide nothing. Anything else raises ``NotCovered`` naming what to do.
"""

from __future__ import annotations

from typing import Any

from toolkit.compat.importing import guard

__getattr__ = guard(__name__, ("beta",))


def training_env() -> Any:
    """The training environment (a ``beta.framework.env.TrainingEnv``), read from the job's files."""
    from .beta.framework.env import TrainingEnv

    return TrainingEnv()
