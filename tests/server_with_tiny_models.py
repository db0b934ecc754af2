"""``python -m vot_lorat`` with the test-only models registered: the TraX server entry of the toolkit tests
(trackers.ini ``command = server_with_tiny_models``, ``paths`` = the tests folder and the repository)."""
import sys

from vot_lorat.toolkit.server import main

import tiny_models

tiny_models.register()
sys.exit(main())
