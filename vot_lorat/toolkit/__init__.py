"""The VOT toolkit's side: the tracker process's settings, the tracking session, the TraX adapter and server, and
VOT workspaces (trackers.ini, which toolkit release runs a stack, offline replicas of stacks, score tables)."""
