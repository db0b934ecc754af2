"""``python -m vot_lorat``: the TraX server (see vot_lorat.trax_server)."""
import sys

from .trax_server import main

sys.exit(main())
