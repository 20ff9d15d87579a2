"""Loads the real sagemaker_inference when it is installed, else sagemaker-toolkit's stand-in (see docs)."""

import _toolkit_stand_in

_toolkit_stand_in.take_over(__name__)
