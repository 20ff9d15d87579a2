"""Stand-in for ``sagemaker_containers.beta``: only ``framework``."""

from toolkit.compat.importing import guard

__getattr__ = guard(__name__, ("framework",))
