"""Stand-in for ``sagemaker_containers.beta``: only ``framework``."""

from toolkit.compat.training import guard

__getattr__ = guard(__name__, ("framework",))
