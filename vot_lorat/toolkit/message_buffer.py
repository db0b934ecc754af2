"""What the tracker writes to stdout for the toolkit, passed on in one write per answer."""
from __future__ import annotations

import os
import sys


class MessageBuffer:
    """Collects what is written to stdout (file descriptor 1) in a pipe and passes it on in one write.

    libtrax writes each message in pieces (a dozen per object), and every piece wakes the toolkit, which
    reads it and waits for the next: on a busy machine those wake-ups cost more than the message. Only for
    messages that fit the pipe (1 MiB on Linux; 64 KiB where it cannot be enlarged), since nothing reads it
    while the server writes; an inactive buffer leaves stdout alone.
    """

    def __init__(self, active: bool) -> None:
        self.active = active
        if not active:
            return
        import fcntl  # POSIX only

        sys.stdout.flush()
        self.stdout = os.dup(1)
        self.pending, write_end = os.pipe()
        try:
            fcntl.fcntl(write_end, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except OSError:
            pass
        os.dup2(write_end, 1)
        os.close(write_end)
        os.set_blocking(self.pending, False)

    def flush(self) -> None:
        """Pass on everything written since the last flush."""
        if not self.active:
            return
        chunks = []
        while True:
            try:
                chunk = os.read(self.pending, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = memoryview(b"".join(chunks))
        while data:
            data = data[os.write(self.stdout, data):]

    def close(self) -> None:
        if not self.active:
            return
        sys.stdout.flush()
        self.flush()
        os.dup2(self.stdout, 1)
        os.close(self.stdout)
        os.close(self.pending)
        self.active = False
