"""The VOT toolkit's side: the tracker process's settings, the tracking session, the TraX adapter and server, and
VOT workspaces (trackers.ini, the offline demo stack, score tables)."""
