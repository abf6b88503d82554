"""Helpers for command-line entry points: user errors become one clear line, not a traceback."""

from __future__ import annotations

import atexit
import functools
import os
import signal
import sys
import threading

from pipeline.allocator import keep_freed_memory
from pipeline.collector import collect_less_often
from pipeline.io.images import ImageError

USER_ERRORS = (FileNotFoundError, ValueError, ImageError, KeyError)


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def user_errors(main):
    """Run ``main``; print errors a user can fix as ``error: ...`` and exit with status 1.

    SIGTERM (``kill``, a scheduler's pre-emption, ``docker stop``) is handled like Ctrl+C: the
    stage unwinds, so temporary outputs are removed and its MLflow run ends KILLED."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        signal.signal(signal.SIGTERM, interrupt)
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {message}", file=sys.stderr)
            sys.exit(1)

    return wrapper


def run_script(main) -> None:
    """Run a stage's ``main`` as the process's script, then end the process without the
    interpreter's teardown: after a stage that imported torch, Lightning and MLflow, freeing every
    module's objects one by one takes about 2 s on 2 CPU cores, paid by every stage of every
    `dvc repro`. The exit handlers run first (MLflow's, logging's, temporary folders'), and the
    standard streams are flushed; an error, or a thread still working, takes the ordinary exit.
    Freed memory stays in the process for reuse (pipeline/allocator.py), and the garbage collector runs
    less often (pipeline/collector.py): both before the stage imports torch."""
    keep_freed_memory()
    collect_less_often()
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code not in (None, 0, 1):
            raise
        code = exc.code or 0
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's; elsewhere the ordinary exit
    if run_exit_handlers is None or any(t is not threading.main_thread() and not t.daemon
                                        for t in threading.enumerate()):
        sys.exit(code)
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stage_parser(description: str, pipelines: bool = True):
    """The arguments every stage after `prepare` shares: params, manifest (and saved pipelines)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", default="data/prepared/manifest.json")
    if pipelines:
        parser.add_argument("--pipelines", default="data/augment", help="saved augmentation pipelines")
    return parser


def training_parser(description: str):
    """A training stage's arguments: the shared ones, the augmentation preview to log, the model
    folder, and --resume."""
    parser = stage_parser(description)
    parser.add_argument("--preview", help="augmentation preview logged with the run")
    parser.add_argument("--out", help="the model folder (default models/<model>)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.ckpt")
    return parser
