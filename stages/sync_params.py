"""Write params.yaml from conf/ (plus optional Hydra overrides), exactly as DVC composes it.

    python stages/sync_params.py                 # defaults
    python stages/sync_params.py data=raccoon    # what `dvc exp run -S data=raccoon` would write
"""

import sys

from dvc.utils.hydra import compose_and_dump

from pipeline.config import CONF_DIR


def main(argv=None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    compose_and_dump("params.yaml", str(CONF_DIR), None, "config", str(CONF_DIR.parent), overrides)
    print(f"params.yaml written from conf/ {' '.join(overrides)}".rstrip())


if __name__ == "__main__":
    main()
