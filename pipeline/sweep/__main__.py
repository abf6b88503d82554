from pipeline.cli import run_script
from pipeline.sweep.app import entry

run_script(entry)  # ends without the interpreter's teardown, as the stages do
