"""End-to-end tests of a path's egress-side configuration: the scheduler resolves it per path (source,
site), sends it to the egress worker (MSG_SCHEDULER_PATH_CONFIG) before the first DELIVER that names it,
and the egress applies it to that attempt. Until the shaping files feed it, the configuration is filled
from the node's [egress] keys, so these tests drive it with those keys: a timeout per SMTP phase against
a scripted receiver that answers too late, the MX port, the idle timeout, and a restarted worker that
must be sent the configuration again (it would otherwise log that it does not hold it).

    /usr/bin/python3 tests/e2e/egress_path_test.py -k rcpt
"""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, wait_for  # noqa: E402
from peers import Sink  # noqa: E402
from fault_peers import FaultCase, Session  # noqa: E402

# meson: see discover.py
MESON = {"suite": "delivery", "exclusive": True}

NOT_HELD = "which this worker does not hold"


def pause(session, seconds):
    """Hold the reply for `seconds`, or until the server stops."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not session.srv.stopping:
        time.sleep(0.05)


class SlowRcptSession(Session):
    def on_rcpt(self, addr):
        pause(self, 3)
        return "250 2.1.5 ok"


class SlowDotSession(Session):
    def on_dot(self):
        pause(self, 3)
        return "250 2.0.0 queued"


class PathCase(FaultCase):
    def start_path(self, hosts=(), egress="", mx=False):
        """A node whose [egress] keys are exactly `egress` (plus the resolver); far.test goes to `hosts`
        on 127.0.0.1 by a route, or through its MX (the DNS test zone) when `mx`."""
        cfg = '[route."good.test"]\nhosts = ["[127.0.0.1]:%d"]\n' % self.good.port
        if hosts:
            cfg += '[route."*"]\nhosts = [%s]\n' % ", ".join('"[127.0.0.1]:%d"' % p for p in hosts)
        cfg += '[queue.default]\nretry_interval = "30s"\nmax_retry_interval = "30s"\n'
        eg = egress
        if self.dns:
            eg += '\nresolver = "%s"\ndns_timeout = "500ms"' % self.dns.address
        self.node = Node(config_extra=cfg, egress=eg, park_delivery=False).start()
        return self.node

    def transient(self, msg_id):
        return wait_for(lambda: self.records_of("TransientFailure", msg_id), 20, what="TransientFailure record")


class PhaseTimeoutTest(PathCase):
    def test_rcpt_timeout_is_the_command_timeout_of_the_path(self):
        """command_timeout 1s: a RCPT reply 3 s late ends the attempt after ~1 s as a transient failure."""
        srv = self.script(SlowRcptSession)
        self.start_path(hosts=(srv.port,), egress='command_timeout = "1s"\ndata_timeout = "30s"')
        t0 = time.monotonic()
        msg_id = self.send(["a@far.test"])
        recs = self.transient(msg_id)
        took = time.monotonic() - t0
        self.assertIn("timeout waiting for a RCPT reply", recs[0]["response"]["content"], recs[0])
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 2.9, "the RCPT reply was waited for: the path's timeout did not apply")
        self.assertEqual(srv.delivered_to("a@far.test"), 0)
        self.assertNotIn(NOT_HELD, self.node.log())

    def test_data_dot_timeout_is_the_data_timeout_of_the_path(self):
        """data_timeout 1s (KumoMTA's data_dot_timeout): the reply after the body 3 s late is a timeout;
        the commands before it (command_timeout 30s) are answered at once."""
        srv = self.script(SlowDotSession)
        self.start_path(hosts=(srv.port,), egress='command_timeout = "30s"\ndata_timeout = "1s"')
        t0 = time.monotonic()
        msg_id = self.send(["a@far.test"])
        recs = self.transient(msg_id)
        self.assertLess(time.monotonic() - t0, 2.9)
        self.assertIn("timeout waiting for the reply after the message", recs[0]["response"]["content"], recs[0])
        self.assertNotIn(NOT_HELD, self.node.log())

    def test_generous_timeouts_deliver_from_the_slow_receiver(self):
        """The same slow receiver with command_timeout 10s: delivered (the timeouts are the path's, not fixed)."""
        srv = self.script(SlowRcptSession)
        self.start_path(hosts=(srv.port,), egress='command_timeout = "10s"')
        msg_id = self.send(["a@far.test"])
        wait_for(lambda: srv.delivered_to("a@far.test") == 1, 20, what="delivered after the slow RCPT")
        self.assertEqual(self.records_of("TransientFailure", msg_id), [])


class MxPortTest(PathCase):
    records = ["far.test. 60 IN MX 10 mx.far.test.", "mx.far.test. 60 IN A 127.0.0.1"]

    def test_mx_hosts_are_reached_on_the_paths_smtp_port(self):
        """[egress] port = P: the MX host of far.test is connected to on port P (the path's smtp_port)."""
        sink = self.peer(Sink("127.0.0.1"))
        self.start_path(egress="port = %d" % sink.port, mx=True)
        msg_id = self.send(["a@far.test"])
        wait_for(lambda: sink.delivered_to("a@far.test") == 1, 20, what="delivered through the MX")
        recs = wait_for(lambda: self.records_of("Delivery", msg_id), 5, what="Delivery record")
        self.assertEqual(recs[0]["peer_address"]["addr"], "127.0.0.1:%d" % sink.port, recs[0])
        self.assertNotIn(NOT_HELD, self.node.log())


class IdleAndRestartTest(PathCase):
    def test_idle_timeout_of_the_path_closes_the_connection(self):
        """idle_timeout 1s: the connection stays for the next message, and is closed soon after 1 s idle."""
        sink = self.peer(Sink("127.0.0.1"))
        self.start_path(hosts=(sink.port,), egress='idle_timeout = "1s"')
        self.send(["a@far.test"])
        wait_for(lambda: sink.delivered_to("a@far.test") == 1, 10, what="delivered")
        t0 = time.monotonic()
        self.assertEqual(sink.open, 1, "the connection is kept for the next message")
        wait_for(lambda: sink.open == 0, 5, what="the idle connection closed")
        self.assertLess(time.monotonic() - t0, 2.5, "closed long after the path's idle timeout")

    def test_restarted_worker_is_sent_the_path_configuration_again(self):
        """kill -9 of the egress: the scheduler sends the new worker the configuration before its first
        DELIVER on the path (a worker that gets a DELIVER naming one it does not hold logs so)."""
        sink = self.peer(Sink("127.0.0.1"))
        node = self.start_path(hosts=(sink.port,), egress='command_timeout = "1s"')
        self.send(["a@far.test"])
        wait_for(lambda: sink.delivered_to("a@far.test") == 1, 10, what="delivered")
        inst = node.instances()["egress[0]"]
        os.kill(inst["pid"], signal.SIGKILL)
        wait_for(lambda: (lambda r: r["pid"] not in (0, inst["pid"]) and r["state"] == "ready")(
            node.instances()["egress[0]"]), 10, what="egress[0] restarted and ready")
        self.send(["b@far.test"])
        wait_for(lambda: sink.delivered_to("b@far.test") == 1, 10, what="delivered by the new worker")
        self.assertNotIn(NOT_HELD, node.log(), "a DELIVER reached the new worker before its configuration")


if __name__ == "__main__":
    unittest.main()
