"""The model server behind ``serve``: environment -> handler -> WSGI app -> prefork workers.

Only ``main`` is exported; Flask, waitress and numpy are imported when serving starts.
"""

from toolkit.serving.entry import main

__all__ = ["main"]
