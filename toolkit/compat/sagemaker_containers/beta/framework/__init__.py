"""Stand-in for ``sagemaker_containers.beta.framework``; its modules load on first use."""

from __future__ import annotations

from typing import Any, Optional

from toolkit.compat.importing import guard

__getattr__ = guard(__name__, ("content_types", "encoders", "env", "errors", "modules", "transformer", "worker"))


def training_env(resource_config: Optional[dict] = None, input_data_config: Optional[dict] = None,
                 hyperparameters: Optional[dict] = None) -> Any:
    """A ``TrainingEnv``; the arguments replace what the config files say."""
    from .env import TrainingEnv

    return TrainingEnv(resource_config, input_data_config, hyperparameters)
