"""``python -m vot_lorat``: the TraX server the VOT toolkit starts (see :mod:`vot_lorat.toolkit.server`)."""
import sys

from .toolkit.server import main

sys.exit(main())
