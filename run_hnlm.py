"""Train with semantic hard negatives: ``python run_hnlm.py --model=LightGCN --dataset=ml-100k``.

Same as ``recbole-hnlm train ...``; see ``python run_hnlm.py --help``.
"""

import sys

from recbole_hnlm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
