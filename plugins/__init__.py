"""Not a package to install: this file makes pytest import plugins/conftest.py as
``plugins.conftest``, so that it never takes the module name ``conftest`` from tests/conftest.py
when both folders are collected in one run."""
