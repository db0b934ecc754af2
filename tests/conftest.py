"""The test-only models (tests/tiny_models.py) are known to every test."""
import tiny_models

tiny_models.register()
