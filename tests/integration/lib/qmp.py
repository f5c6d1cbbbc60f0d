"""A small, stdlib-only QMP client for dsvmi's integration tests.

QMP is line-delimited JSON over a unix socket: the server greets, the client
sends qmp_capabilities, then every command gets exactly one reply
({"return": ...} or {"error": ...}) while asynchronous {"event": ...} messages
may arrive at any time, also between a command and its reply. This client
keeps those events in a list so a test can wait for one later.

    with QMP.connect("/tmp/x/qmp.sock", timeout=30) as q:
        q.execute("blockdev-add", driver="dsvmi", **{"node-name": "f"}, ...)
        q.execute("qom-set", path="/machine/peripheral/disk0",
                  property="drive", value="f")
        ev = q.wait_event("JOB_STATUS_CHANGE", timeout=10)

Errors: QMPError (the command answered {"error": ...}; .klass / .desc),
QMPTimeout (nothing in time), ConnectionError (the peer went away).
"""

import json
import os
import socket
import time


class QMPError(Exception):
    """A command answered {"error": {"class": ..., "desc": ...}}."""

    def __init__(self, command, error):
        self.command = command
        self.klass = error.get("class", "?")
        self.desc = error.get("desc", "?")
        super().__init__(f"QMP {command}: {self.klass}: {self.desc}")


class QMPTimeout(Exception):
    pass


class QMP:
    def __init__(self, sock, timeout):
        self._sock = sock
        self._timeout = timeout
        self._buf = b""
        self._next_id = 1
        self.events = []  # every event seen, oldest first; tests may clear it
        self.greeting = None

    # -- connection ---------------------------------------------------------

    @classmethod
    def connect(cls, path, timeout=30.0, wait=True):
        """Connects to the unix socket at `path` (retrying until `timeout`
        while the server starts when `wait`), reads the greeting and
        negotiates capabilities."""
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if not wait or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        q = cls(s, timeout)
        q.greeting = q._read_message(time.monotonic() + timeout)
        if "QMP" not in q.greeting:
            q.close()
            raise ConnectionError(f"not a QMP greeting: {q.greeting!r}")
        q.execute("qmp_capabilities")
        return q

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- commands -----------------------------------------------------------

    def execute(self, command, args=None, timeout=None, **kwargs):
        """Runs `command` with `args` (a dict) or keyword arguments (use
        **{"node-name": ...} for names with dashes). Returns the "return"
        value; raises QMPError on an error reply."""
        arguments = dict(args or {})
        arguments.update(kwargs)
        msg_id = self._next_id
        self._next_id += 1
        msg = {"execute": command, "id": msg_id}
        if arguments:
            msg["arguments"] = arguments
        self._send(msg)
        deadline = time.monotonic() + (timeout or self._timeout)
        while True:
            reply = self._read_message(deadline)
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != msg_id:
                # A reply to nothing we asked: the stream is out of step.
                raise ConnectionError(f"unexpected QMP reply {reply!r}")
            if "error" in reply:
                raise QMPError(command, reply["error"])
            return reply.get("return")

    def hmp(self, command_line, timeout=None):
        """Runs a human monitor command (e.g. 'info block') and returns its
        text output."""
        return self.execute("human-monitor-command",
                            {"command-line": command_line}, timeout=timeout)

    # -- events -------------------------------------------------------------

    def poll_events(self, timeout=0.0):
        """Reads any events that arrive within `timeout` seconds into
        self.events and returns the list."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._read_message(deadline)
            except QMPTimeout:
                return self.events
            if "event" in msg:
                self.events.append(msg)
            else:
                raise ConnectionError(f"unexpected QMP message {msg!r}")

    def wait_event(self, name, timeout=None, match=None):
        """Returns (and removes from self.events) the first event called
        `name` whose "data" contains every key/value of `match`, waiting up
        to `timeout` seconds for it."""
        deadline = time.monotonic() + (timeout or self._timeout)

        def take():
            for i, ev in enumerate(self.events):
                if ev.get("event") != name:
                    continue
                data = ev.get("data", {})
                if match and any(data.get(k) != v for k, v in match.items()):
                    continue
                return self.events.pop(i)
            return None

        while True:
            ev = take()
            if ev is not None:
                return ev
            msg = self._read_message(deadline)
            if "event" in msg:
                self.events.append(msg)
            else:
                raise ConnectionError(f"unexpected QMP message {msg!r}")

    # -- wire ---------------------------------------------------------------

    def _send(self, msg):
        if self._sock is None:
            raise ConnectionError("QMP connection closed")
        self._sock.sendall(json.dumps(msg).encode() + b"\n")

    def _read_message(self, deadline):
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout("no QMP message in time")
            if self._sock is None:
                raise ConnectionError("QMP connection closed")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise QMPTimeout("no QMP message in time") from None
            if not chunk:
                raise ConnectionError("QMP peer closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)


def wait_for_socket(path, timeout=30.0):
    """Waits until a unix socket file exists at `path`."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise QMPTimeout(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)
