"""This folder goes on the PYTHONPATH of the user's training process (last, after the user's own entries).

It holds only one small module per stand-in package, named like the AWS package, so nothing else of
the toolkit can shadow a user module. Each one hands over to the real package when one is installed
anywhere on the path, else to the toolkit's stand-in (see toolkit/compat/training.py).
"""
