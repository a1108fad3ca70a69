"""``python -m recbole_hnlm.data.prepare``: the same as ``recbole-hnlm prepare``."""

from . import main

raise SystemExit(main())
