"""Tests that build and run the reference images (a package, so that its conftest never shadows tests/conftest.py)."""
