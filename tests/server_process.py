"""Starts `weft server` (or `weft serve`) and finds the address it listens on.

The server announces `… on http://…` on stderr, but a log line can
come first (sqlx warns about a slow statement while it creates a database
on a busy machine), so every line up to the announcement is read. What the
server prints afterwards is drained by a thread, so a chatty server never
blocks on a full pipe, and its last lines are kept for error messages.
"""
import collections
import re
import subprocess
import threading

ADDRESS = re.compile(r" on (http://\S+)")


class Started:
    """A started server: `proc`, its `url`, and `tail()`, its last lines."""

    def __init__(self, proc, url, lines):
        self.proc = proc
        self.url = url
        self._lines = lines

    def tail(self):
        return "".join(self._lines)

    def stop(self, timeout=10):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(args, **popen):
    """Runs `args` (a `weft … server`/`serve` command line); returns a
    `Started` once it listens, or raises with what it printed."""
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, **popen)
    lines = collections.deque(maxlen=200)
    url = None
    for line in proc.stderr:
        lines.append(line)
        found = ADDRESS.search(line)
        if found:
            url = found.group(1)
            break
    if url is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{' '.join(map(str, args))} did not start:\n{''.join(lines)}")

    def drain():
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return Started(proc, url, lines)
