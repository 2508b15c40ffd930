"""Shared test settings.

Under CI (the variable CI set, as in `.ci/run` and the fresh-machine check) hypothesis' property
tests draw the same examples on every run and machine (derandomized, no example database), so
CI passes or fails the same way everywhere; elsewhere they keep exploring new random examples
(and a failure found that way is pinned with @example).
"""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
