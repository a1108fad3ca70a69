"""``python -m recbole_hnlm COMMAND ...``: the ``recbole-hnlm`` command line."""

import sys

from recbole_hnlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
