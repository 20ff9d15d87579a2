"""Built-in plugins: ordinary plugin modules, registered by the same call as installed ones.

The names are what ``toolkit plugins`` lists and ``TOOLKIT_DISABLE_PLUGINS`` accepts.
``SERVING_ONLY`` names the built-ins that implement serving hooks alone: ``train`` does not
import or register them (a job start would pay for modules it never calls); everything else,
``toolkit plugins`` included, gets them all.

A plugin's name outlives its module's: ``local`` (the fetcher for paths on this machine) lives in
file.py, so that it is not read as toolkit/local/ (the emulator), and keeps its name for the
``TOOLKIT_DISABLE_PLUGINS`` settings that already block it. Likewise ``codecs`` (the built-in media
formats) lives in formats.py, so that it is not read as toolkit/serving/codecs.py (the registry
that asks every plugin's decoders and encoders).
"""

BUILTIN_PLUGINS: dict[str, str] = {
    "variables": "toolkit.builtin.variables",
    "local": "toolkit.builtin.file",
    "s3": "toolkit.builtin.s3",
    "git": "toolkit.builtin.git",
    "https": "toolkit.builtin.https",
    "pip": "toolkit.builtin.pip",
    "sdkv3": "toolkit.builtin.sdkv3",
    "python": "toolkit.builtin.python",
    "shell": "toolkit.builtin.shell",
    "executable": "toolkit.builtin.executable",
    "codecs": "toolkit.builtin.formats",
    "inference": "toolkit.builtin.inference",
    "pytorch": "toolkit.builtin.pytorch",
    "xgboost": "toolkit.builtin.xgboost",
    "sklearn": "toolkit.builtin.sklearn",
    "waitress": "toolkit.builtin.waitress",
}

SERVING_ONLY = frozenset({"codecs", "inference", "pytorch", "xgboost", "sklearn", "waitress"})
