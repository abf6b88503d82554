"""cvpipe: a computer-vision experiment pipeline (library layer).

Importing the package sets environment defaults that every entry point needs:
no network version checks, no telemetry, and a tracking server that stopped answering noticed
in seconds (MLflow's own default retries a request for about four minutes; a training then
keeps its logs offline, see pipeline.tracking_offline). Users can still override them.
"""

import os

for _name, _value in {
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations checks PyPI on import
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    # MLflow's own "View run" link opens the GenAI view; trainings print one to the training view
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}.items():
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
