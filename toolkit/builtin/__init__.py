"""Built-in plugins: ordinary plugin modules, registered by the same call as installed ones.

The names are what ``toolkit plugins`` lists and ``TOOLKIT_DISABLE_PLUGINS`` accepts.
"""

BUILTIN_PLUGINS: dict[str, str] = {
    "variables": "toolkit.builtin.variables",
    "local": "toolkit.builtin.local",
    "s3": "toolkit.builtin.s3",
    "git": "toolkit.builtin.git",
    "https": "toolkit.builtin.https",
    "pip": "toolkit.builtin.pip",
    "python": "toolkit.builtin.python",
    "shell": "toolkit.builtin.shell",
    "executable": "toolkit.builtin.executable",
    "codecs": "toolkit.builtin.codecs",
    "inference": "toolkit.builtin.inference",
    "waitress": "toolkit.builtin.waitress",
}
