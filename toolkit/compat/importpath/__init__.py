"""This folder goes on the import path after everything else: on ``sys.path`` in ``serve``, on the
PYTHONPATH of the user's ``train`` / ``process`` child (after the user's own entries), and in a ``.pth``
file of the reference images (see toolkit/compat/importing.py).

It holds only one small module per stand-in package, named like the AWS package, so nothing else of
the toolkit can shadow a user module. Each one hands over to the real package when one is installed
anywhere on the path, else to the toolkit's stand-in.
"""
