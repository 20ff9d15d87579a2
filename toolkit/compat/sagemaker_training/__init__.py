"""sagemaker-toolkit's stand-in for ``sagemaker_training`` (sagemaker-training 5.x).

Covers what training scripts import: ``environment`` (``Environment()`` and the module's paths and
readers) and ``logging_config.get_logger``. Anything else raises ``NotCovered`` naming what to do.
"""

from toolkit.compat.importing import guard

__getattr__ = guard(__name__, ("environment", "logging_config"))
