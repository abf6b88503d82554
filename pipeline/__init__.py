"""cvpipe: a computer-vision experiment pipeline (library layer).

Importing the package sets environment defaults that every entry point needs:
no network version checks, no telemetry. Users can still override them.
"""

import os

for _name, _value in {
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks PyPI on import
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
