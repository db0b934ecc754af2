"""Frames: reading image files as RGB frames, finding a folder's frames in order, and reading ahead."""
