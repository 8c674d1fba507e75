"""Crash tests (TESTING.md CRASH-04..07 and a whole-node restart): kill -9 of roles while mail flows,
then the accounting invariant over the client's own list of 250s.

The client (smtplib, several threads) gives every attempt fresh recipient addresses, so a delivery at
the sink names exactly one attempt; an attempt counts only when its DATA got 250 (the queue id is taken
from that reply). After faults, restarts and a drain wait each recipient of each 250 must be exactly
one of: delivered to the sink (at least once), bounced with a Bounce/Expiration record, or still queued
(the scheduler's messages_queued accounts for it). Duplicates are counted and, in crash tests, allowed
only for deliveries whose first copy reached the sink inside the crash window.

    RINGMAIL_BUILD_DIR=build /usr/bin/python3 tests/e2e/crash_test.py -k scheduler
    CRASH_SEED=1234 ... -k random   (the seed of the random kills; printed when not given)
"""
import asyncio
import os
import random
import re
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import Node, pid_alive, wait_for  # noqa: E402
from peers import free_udp_tcp_port  # noqa: E402
from accounting import Client, all_delivered, crash_node_config, tally  # noqa: E402

# meson: see discover.py
MESON = {"suite": "crash", "timeout": 180, "exclusive": True}

class RecSink:
    """An aiosmtpd recording server with the local-part rules of peers.Sink (tempfail*@ 451 and
    permfail*@ 550 at RCPT) and hooks around the 250 after DATA, which peers.Sink does not have:
    before_data(envelope) may return a delay in seconds (a slow server; when the client goes away
    during it nothing is recorded, as a server that never sent its 250 must not deliver), and
    after_record(envelope) runs once the message is recorded, just before the 250 is written."""

    def __init__(self, host="127.0.0.1", before_data=None, after_record=None):
        from aiosmtpd.controller import Controller
        self.host = host
        self.port = free_udp_tcp_port(host)
        self.lock = threading.Lock()
        self.accepted = []  # (monotonic time, mail_from, [rcpts], data)
        self.abandoned = 0  # DATA whose client vanished during a before_data delay
        self.active = 0  # transactions between MAIL and the end of DATA: in flight
        self.before_data = before_data
        self.after_record = after_record
        sink = self

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, mail_options):
                with sink.lock:
                    if not getattr(envelope, "counted", False):
                        sink.active += 1
                        envelope.counted = True
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 OK"

            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                local = address.split("@")[0].lower()
                if local.startswith("tempfail"):
                    return "451 4.3.0 try again later"
                if local.startswith("permfail"):
                    return "550 5.1.1 user unknown"
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 OK"

            async def handle_DATA(self, server, session, envelope):
                try:
                    return await self.data(server, envelope)
                finally:
                    with sink.lock:
                        if getattr(envelope, "counted", False):
                            sink.active -= 1
                            envelope.counted = False

            async def data(self, server, envelope):
                delay = sink.before_data(envelope) if sink.before_data else None
                if delay:
                    try:
                        await asyncio.sleep(delay)
                    except asyncio.CancelledError:
                        with sink.lock:
                            sink.abandoned += 1
                        raise
                    if server.transport is None or server.transport.is_closing():
                        with sink.lock:
                            sink.abandoned += 1
                        return "451 4.3.0 client went away"
                with sink.lock:
                    sink.accepted.append((time.monotonic(), envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.content))
                    n = len(sink.accepted)
                if sink.after_record:
                    sink.after_record(envelope)
                return "250 2.0.0 queued as sink-%d" % n

        self.controller = Controller(Handler(), hostname=host, port=self.port, ident="crash-sink")
        self.controller.start()

    def deliveries(self):
        """recipient (lower case) -> sorted list of the times it was accepted."""
        out = {}
        with self.lock:
            for t, _, rcpts, _ in self.accepted:
                for r in rcpts:
                    out.setdefault(r.lower(), []).append(t)
        return out

    def delivered_to(self, rcpt):
        return len(self.deliveries().get(rcpt.lower(), []))

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass


class CrashCase(unittest.TestCase):
    def setUp(self):
        self.node = None
        self.sinks = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        if self.node and os.environ.get("CRASH_KEEP"):
            # keep the data directory (spool, logs) for a post-mortem
            self.node.stop()
            sys.stderr.write("CRASH_KEEP: node directory left at %s\n" % self.node.tmp)
        elif self.node:
            self.node.cleanup()
        for s in self.sinks:
            s.stop()

    def sink(self, **kw):
        s = RecSink(**kw)
        self.sinks.append(s)
        return s

    def start(self, sink, queue="", supervisor="", egress_workers=1):
        self.node = Node(**crash_node_config(sink.port, queue, supervisor),
                         egress_workers=egress_workers).start()
        return self.node

    def kill(self, victim):
        """kill -9 of one role instance; returns (pid, restarts before) once the supervisor replaced it."""
        inst = self.node.instances()[victim]
        pid = inst["pid"]
        os.kill(pid, signal.SIGKILL)
        return pid, inst["restarts"]

    def wait_replaced(self, victim, pid, restarts, timeout=10):
        def replaced():
            r = self.node.instances()[victim]
            return r if r["pid"] not in (0, pid) and r["state"] == "ready" and r["restarts"] > restarts else None
        return wait_for(replaced, timeout, what="%s restarted and ready" % victim)

    def queued(self):
        return self.node.counter("scheduler", "messages_queued")

    def drain(self, client, sink, expect_empty=True, timeout=60):
        """Wait until every normal recipient of every 250 reached the sink and (if expected) the queue is
        empty. A timeout is not fatal here: the accounting that follows says what is missing."""
        def done():
            if not all_delivered(client, sink.deliveries()):
                return False
            return (self.queued() == 0) if expect_empty else True
        try:
            wait_for(done, timeout, step=0.25, what="drain")
            return True
        except AssertionError:
            return False

    def account(self, client, sink, expect_empty=True, windows=(), max_dups=None):
        time.sleep(1.2)  # the spool flushes its log buffer every second
        # log segments are flushed a moment after the spool state changed: look again for a while
        # before calling a difference a violation
        deadline = time.monotonic() + 10
        while True:
            st, problems = self.tally(client, sink, expect_empty, windows, max_dups)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        sys.stderr.write("%s accounting: %s\n" % (self.id().split(".")[-1], st))
        if problems:
            sys.stderr.write("---- ringmaild log (tail) ----\n%s\n" % self.node.log()[-4000:])
            bad = set(re.findall(r"\b([0-9a-f]{32})\b", "\n".join(problems)))
            for r in self.node.log_records():
                if r.get("id") in bad:
                    sys.stderr.write("record of a violating message: %s\n" % r)
            self.fail("%d accounting violations (stats %s):\n  %s" % (len(problems), st,
                                                                      "\n  ".join(problems[:30])))
        return st

    def tally(self, client, sink, expect_empty, windows, max_dups):
        return tally(self.node, client, sink.deliveries(), expect_empty, windows, max_dups,
                     queued=self.queued(), abandoned=sink.abandoned)


class CrashTest(CrashCase):
    def test_kill9_scheduler_at_a_random_moment_while_mail_flows(self):
        """CRASH-04: the scheduler restarts, rebuilds from the spool walk, every 250 ends delivered."""
        # a slightly slow sink, so that a queue builds up behind the deliveries in flight
        sink = self.sink(before_data=lambda env: 0.02)
        node = self.start(sink)
        client = Client(node.smtp_port, "c4").start([[""]] * 200, threads=3, pace=0.005)
        seed = int(os.environ.get("CRASH_SEED") or random.randrange(1 << 30))
        rnd = random.Random(seed)
        # a moment when ingest is running and deliveries are in flight
        at = rnd.randint(40, 150)
        sys.stderr.write("CRASH-04 seed=%d: kill after %d 250s\n" % (seed, at))
        wait_for(lambda: client.count() >= at and sink.accepted, 60, what="%d messages accepted" % at)
        self.assertGreater(len(sink.accepted), 0, "no delivery in flight yet")
        self.assertLess(len(sink.accepted), client.count(), "nothing queued at the kill")
        t0 = time.monotonic()
        pid, restarts = self.kill("scheduler[0]")
        self.wait_replaced("scheduler[0]", pid, restarts)
        t1 = time.monotonic()
        client.join()
        self.assertEqual(client.count(), 200, "the client could not get 200 messages accepted: %s" % client.errors)
        self.drain(client, sink, timeout=60)
        st = self.account(client, sink, windows=[(t0 - 2, t1 + 5)])
        self.assertRegex(node.log(), r"scheduler\[0\] pid died \(killed by signal 9")
        sys.stderr.write("CRASH-04 duplicates: %d\n" % st["dups"])

    def test_kill9_egress_mid_data_then_delivered_once(self):
        """CRASH-05: the sink holds the 250 after the body; egress dies meanwhile; after the restart the
        message is delivered, once (the sink never answered, so it never accepted it). One message is
        in flight at the kill, so no duplicate at all is allowed; four more go through afterwards."""
        state = {"first": None}
        in_data = threading.Event()

        def slow_first(envelope):
            if state["first"] is None:
                state["first"] = [r.lower() for r in envelope.rcpt_tos]
                in_data.set()
                return 4.0
            return None
        sink = self.sink(before_data=slow_first)
        node = self.start(sink)
        client = Client(node.smtp_port, "c5").start([[""]], threads=1)
        self.assertTrue(in_data.wait(30), "no DATA reached the sink")
        pid, restarts = self.kill("egress[0]")
        self.wait_replaced("egress[0]", pid, restarts)
        client.join()
        more = Client(node.smtp_port, "c5b").start([[""]] * 4, threads=1)
        more.join()
        client.accepted += more.accepted
        self.assertEqual(client.count(), 5, client.errors + more.errors)
        self.drain(client, sink, timeout=40)
        st = self.account(client, sink, max_dups=0)
        for r in state["first"]:
            self.assertEqual(sink.delivered_to(r), 1, "the message held in DATA: %s" % r)
        self.assertGreaterEqual(sink.abandoned, 1, "the kill did not land during DATA")
        self.assertEqual(st["dups"], 0)
        self.assertRegex(node.log(), r"egress\[0\] pid died \(killed by signal 9")

    def test_kill9_egress_after_the_remote_250_delivers_again(self):
        """CRASH-06b: the sink accepted the message and the egress dies before it reads the 250: the
        spool never learns it, so the message is delivered again after the restart (one counted
        duplicate), never lost, and logged as delivered once."""
        state = {"rcpts": None, "pid": None}

        def kill_before_250(envelope):
            if state["rcpts"] is None and state["pid"]:
                state["rcpts"] = [r.lower() for r in envelope.rcpt_tos]
                os.kill(state["pid"], signal.SIGKILL)
                # the 250 must not reach a live egress: wait until it is gone
                end = time.monotonic() + 2
                while pid_alive(state["pid"]) and time.monotonic() < end:
                    time.sleep(0.01)
        sink = self.sink(after_record=kill_before_250)
        node = self.start(sink)
        state["pid"] = node.instances()["egress[0]"]["pid"]
        restarts = node.instances()["egress[0]"]["restarts"]
        t0 = time.monotonic()
        client = Client(node.smtp_port, "c6").start([[""]] * 3, threads=1)
        wait_for(lambda: state["rcpts"], 30, what="the first DATA at the sink")
        self.wait_replaced("egress[0]", state["pid"], restarts)
        client.join()
        self.assertEqual(client.count(), 3, client.errors)
        self.drain(client, sink, timeout=40)
        st = self.account(client, sink, windows=[(t0, time.monotonic())])
        for r in state["rcpts"]:
            self.assertEqual(sink.delivered_to(r), 2, "%s: accepted before the kill, then again" % r)
        self.assertGreaterEqual(st["dups"], 1)
        qid = [a[0] for a in client.accepted if a[1][0].lower() == state["rcpts"][0]]
        self.assertEqual(len(qid), 1)
        def delivery_records():
            return [r for r in node.log_records() if r["type"] == "Delivery" and r["id"] == qid[0]]
        wait_for(delivery_records, 10, what="the Delivery record of %s" % qid[0])
        recs = delivery_records()
        self.assertEqual(len(recs), 1, "one Delivery record for the re-delivered message: %s" % recs)
        sys.stderr.write("CRASH-06b duplicates: %d\n" % st["dups"])

    def test_twenty_seeded_random_kills_of_any_role_under_load(self):
        """CRASH-07: 20 kills, one every ~0.5 s, of any role while 2 threads send 300 messages with 1-3
        recipients (some tempfail@ / permfail@). max_age is short, so the tempfail ones expire and the
        queue must drain to zero; permfail ones bounce; all others are delivered."""
        seed = int(os.environ.get("CRASH_SEED") or random.randrange(1 << 30))
        sys.stderr.write("CRASH-07 seed=%d (set CRASH_SEED to repeat)\n" % seed)
        rnd = random.Random(seed)
        plan = []
        for i in range(300):
            kinds = [""] * rnd.randint(1, 3)
            if i % 25 == 7:
                kinds[-1] = "tempfail"
            elif i % 25 == 19:
                kinds[0] = "permfail"
            plan.append(kinds)
        sink = self.sink(before_data=lambda env: 0.02)
        node = self.start(sink, queue='max_age = "25s"\n')
        # ~12 s of sending, so that every kill lands under load
        client = Client(node.smtp_port, "c7").start(plan, threads=2, timeout=100, pace=0.08)
        roles = ["ingress[0]", "spool[0]", "scheduler[0]", "egress[0]"]
        kills = []
        t_first = time.monotonic()
        while len(kills) < 20:
            time.sleep(rnd.uniform(0.3, 0.7))
            victim = rnd.choice(roles)
            inst = node.instances()
            r = inst[victim]
            if r["state"] != "ready" or r["pid"] <= 0:
                # the previous victim is still coming back: kill another role that is up
                up = [v for v in roles if inst[v]["state"] == "ready" and inst[v]["pid"] > 0]
                if not up:
                    continue
                victim = rnd.choice(up)
                r = inst[victim]
            try:
                os.kill(r["pid"], signal.SIGKILL)
            except ProcessLookupError:
                continue
            kills.append(victim)
        t_last = time.monotonic()
        sys.stderr.write("CRASH-07 kills: %s\n" % kills)
        self.assertTrue(client.running(), "the load ended before the last kill")
        node.wait_all_ready(timeout=20)
        client.join(timeout=120)
        self.assertEqual(client.count(), 300, "messages not accepted: %d; errors %s" %
                         (300 - client.count(), client.errors[:5]))
        self.drain(client, sink, timeout=90)
        st = self.account(client, sink, windows=[(t_first - 2, t_last + 10)])
        restarts = sum(r["restarts"] for r in node.instances().values())
        self.assertGreaterEqual(restarts, 20, "every kill is a restart")
        self.assertEqual(node.log().count("killed by signal 9"), 20)
        self.assertGreater(st["expired"], 0, "tempfail recipients expire")
        self.assertGreater(st["bounced"], 0, "permfail recipients bounce")
        sys.stderr.write("CRASH-07 seed=%d duplicates: %d\n" % (seed, st["dups"]))

    def test_kill9_spool_right_after_a_bounce_keeps_the_bounce_record(self):
        """The accounting invariant needs a Bounce record for a recipient the spool made final and
        deleted. Kill -9 of the spool just after it deleted a bounced message (within its log flush
        interval): the record must still be in the log after the restart."""
        sink = self.sink()
        node = self.start(sink)
        client = Client(node.smtp_port, "cb").start([["permfail"]], threads=1)
        client.join()
        self.assertEqual(client.count(), 1, client.errors)
        # the DSN travels in the same spool batch as the final state: once the sink has it, the
        # bounced message is gone from the spool
        wait_for(lambda: sink.delivered_to("s@client.test") >= 1, 20, what="the DSN at the sink")
        pid, restarts = self.kill("spool[0]")
        self.wait_replaced("spool[0]", pid, restarts)
        self.drain(client, sink, timeout=20)
        self.account(client, sink)

    def test_whole_node_restart_in_the_middle_of_deliveries(self):
        """SIGTERM of the node while deliveries run, then a start: nothing lost; duplicates only for
        deliveries in flight at the stop (the sink is slow, so a few are)."""
        sink = self.sink(before_data=lambda env: 0.1)
        node = self.start(sink, egress_workers=2)
        client = Client(node.smtp_port, "cr").start([[""]] * 150, threads=2)
        wait_for(lambda: len(sink.accepted) >= 20, 30, what="deliveries running")
        t0 = time.monotonic()
        with sink.lock:
            in_flight = sink.active
        before = len(sink.accepted)
        node.stop()
        t1 = time.monotonic()
        self.assertLess(len(sink.accepted), 150, "all delivered before the stop; nothing tested")
        sys.stderr.write("restart: %d delivered before SIGTERM, %d when stopped\n" % (before, len(sink.accepted)))
        node.start()
        client.join()
        self.assertEqual(client.count(), 150, client.errors)
        self.drain(client, sink, timeout=60)
        # a clean stop drains in order (ingress and egress first, then spool and scheduler): the deliveries
        # in flight at SIGTERM finish and are recorded, so none is sent twice
        sys.stderr.write("restart: %d transactions in flight at the sink at SIGTERM\n" % in_flight)
        st = self.account(client, sink, windows=[(t0 - 0.5, t1)], max_dups=0)
        self.assertEqual(st["results_dropped_by_scheduler"], 0, st)
        sys.stderr.write("restart duplicates: %d\n" % st["dups"])


if __name__ == "__main__":
    result = unittest.main(verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
