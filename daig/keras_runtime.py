"""Whether this installation can run a requestor's Keras model: the ``keras`` extra.

Servers install ``daig[server]`` without TensorFlow; two of their features run a requestor's
model in a sandboxed child and need it: the API's ``.keras`` -> ``.h5`` conversion and the
aggregator's held-out evaluation. They ask here first and say what is missing instead of
letting the child fail with an ImportError (checked by name, nothing is imported).
"""

from __future__ import annotations

import importlib.util

KERAS_MODULES = ("keras", "tensorflow")
KERAS_EXTRA = "pip install 'daig[server,keras]'"


def missing_keras_modules() -> list[str]:
    """The modules of ``KERAS_MODULES`` this interpreter cannot import (empty: all there)."""
    return [name for name in KERAS_MODULES if importlib.util.find_spec(name) is None]
