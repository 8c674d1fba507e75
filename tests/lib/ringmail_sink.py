"""ringmail_sink - tools/ringmail-sink on a loopback port, for tests and tools/chaos-soak.py.

Sink(tmp, *options) starts it with --record (one JSON line per accepted message) and --json; stop()
sends SIGTERM and returns the summary; start() runs it again on the same port and record file (a sink
outage and its end). Every process is stopped by its pid.
"""
import json
import os
import signal
import socket
import subprocess
import time

from ringmail_node import BUILD_DIR, free_port, wait_for

SINK = os.path.join(BUILD_DIR, "tools", "ringmail-sink")


class Sink:
    """ringmail-sink on a loopback port; stop() sends SIGTERM and returns the JSON summary."""

    def __init__(self, tmp, *options, workers=1, record=True):
        self.record = os.path.join(tmp, "record-%d.jsonl" % time.monotonic_ns())
        self.tmp = tmp
        self.args = ["--workers", str(workers), "--json"] + (["--record", self.record] if record else []) + \
            [str(o) for o in options]
        for _ in range(5):
            self.port = free_port()
            try:
                self.start()
                return
            except OSError:  # the port was taken meanwhile
                pass
        raise AssertionError("no free port for ringmail-sink")

    def start(self):
        """Run the sink (again) on self.port, appending to the same record file. OSError when the port
        is in use."""
        self.err = open(os.path.join(self.tmp, "sink-%d.err" % self.port), "w+")
        self.out = open(os.path.join(self.tmp, "sink-%d.out" % self.port), "w+")
        self.proc = subprocess.Popen([SINK, "--listen", "127.0.0.1:%d" % self.port] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        try:
            wait_for(self.listening, 5, what="ringmail-sink listening")
        except AssertionError:
            self.err.seek(0)
            in_use = "Address already in use" in self.err.read()
            self.kill()
            if in_use:
                raise OSError("127.0.0.1:%d in use" % self.port)
            raise
        return self

    def listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("ringmail-sink exited with %s" % self.proc.returncode)
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.settimeout(2)
            s.recv(512)  # the banner: a probe that is a session like any other (counted)
            s.sendall(b"QUIT\r\n")
            s.recv(512)
        return True

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("ringmail-sink did not stop within 10 s of signal %d" % sig)
        self.out.seek(0)
        lines = [line for line in self.out.read().splitlines() if line.strip()]
        if self.proc.returncode != 0 or not lines:
            self.err.seek(0)
            raise AssertionError("ringmail-sink exit %s, stderr: %s" % (self.proc.returncode, self.err.read()))
        self.out.close()
        self.err.close()
        return json.loads(lines[-1])

    def running(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self.out.close()
        self.err.close()

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record, "rb") as f:
            data = f.read()
        # a line being appended right now is not whole yet
        return [json.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines()]
