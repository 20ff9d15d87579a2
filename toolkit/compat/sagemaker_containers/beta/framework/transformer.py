"""Stand-in for ``sagemaker_containers.beta.framework.transformer``: scripts import it beside ``encoders`` and
``worker`` without using it, so it imports; every name in it is ``NotCovered``."""

from toolkit.compat.importing import module_getattr

__getattr__ = module_getattr(__name__)
