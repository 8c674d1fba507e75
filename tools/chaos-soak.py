#!/usr/bin/python3
"""chaos-soak - random kill -9, SIGSTOP, reloads, rolling restarts, sink outages and disk faults under
load on one node, then the accounting invariant over the client's own list of 250s (TESTING.md).

A node (tests/lib/ringmail_node.py) on loopback routes every domain to tools/ringmail-sink --record;
smtplib clients (tests/lib/accounting.py) offer --rate messages/s and keep every 250's queue id and
recipients (fresh addresses per attempt). The event schedule is drawn from --seed before the node
starts and written out, so the same seed, duration, interval and event kinds replay it. At the end the
load stops, every fault is lifted, the queue drains (bounded) and the invariant is checked: each
recipient of each 250 delivered at least once, more than once only inside an event's window (counted
by reason), nothing delivered that the client did not send, the log's Reception/Delivery records agree,
an empty queue, no role crashed (signals other than the soak's, sanitizer reports) or left restarting.

    tools/chaos-soak.py --build-dir build                       # 30 minutes, all event kinds
    tools/chaos-soak.py --build-dir build --duration 5m --seed 42 --events kill9,reload
Exit: 0 the invariant held; 1 a violation (the summary lists them); 2 bad usage, or the soak itself
broke (no node, a traceback) without a verdict.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

KINDS = ("kill9", "stop", "reload", "restart", "sink", "fault")
FAULT_MODES = ("enospc", "eio", "eio-fsync")
INGRESS_WORKERS = 1
EGRESS_WORKERS = 2
TAG = "cs"
# every address the client makes (accounting.Client.address) and the DSN sender
ADDR_RE = re.compile(r"^%sm(\d+)a(\d+)r(\d+)@a\.test$" % TAG)
# an event's window for duplicates: from a little before it (a delivery whose 250 the event cut) until
# the retries it caused are done
WINDOW_BEFORE = 2.0
WINDOW_AFTER = 12.0


def duration(text):
    """Seconds from 90, 1.5, 90s, 500ms, 30m, 1h."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("not a duration: %r (90, 90s, 500ms, 30m, 1h)" % text)
    return float(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def interval(text):
    try:
        lo, hi = (duration(x) for x in text.split(":", 1))
    except ValueError:
        raise argparse.ArgumentTypeError("not MIN:MAX: %r" % text)
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError("MIN:MAX with 0 < MIN <= MAX: %r" % text)
    return lo, hi


def kinds(text):
    out = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in out if k not in KINDS]
    if bad or not out:
        raise argparse.ArgumentTypeError("event kinds are %s; got %r" % (",".join(KINDS), text))
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=duration, default=duration("30m"), help="load and events (default 30m)")
    p.add_argument("--seed", type=int, default=None, help="seed of the event schedule and the load (default: random, printed)")
    p.add_argument("--rate", type=float, default=20.0, help="messages offered per second (default 20)")
    p.add_argument("--build-dir", default=os.environ.get("RINGMAIL_BUILD_DIR") or os.path.join(HERE, "..", "build"))
    p.add_argument("--keep", action="store_true", help="keep the node's directory (spool, logs, schedule) on failure")
    p.add_argument("--events", type=kinds, default=list(KINDS),
                   help="event kinds, comma-separated (default all: %s); fault needs the fault shim" % ",".join(KINDS))
    p.add_argument("--interval", type=interval, default=(2.0, 8.0),
                   help="MIN:MAX seconds between events, drawn uniformly (default 2:8)")
    p.add_argument("--drain-timeout", type=duration, default=120.0, help="bound on the final drain (default 120s)")
    p.add_argument("--schedule", help="also write the event schedule (JSON) to this file")
    p.add_argument("--json", action="store_true", help="the summary as one JSON object on stdout")
    p.add_argument("--forget-delivery", type=int, default=0, metavar="N",
                   help="checks the checker: the accounting ignores the sink's N-th recorded message, which "
                        "must then be reported as lost")
    a = p.parse_args(argv)
    if a.rate <= 0:
        p.error("--rate must be above 0")
    if a.seed is None:
        a.seed = random.randrange(1 << 30)
    a.build_dir = os.path.abspath(a.build_dir)
    return a


def instances():
    return (["spool[0]", "scheduler[0]"] + ["ingress[%d]" % i for i in range(INGRESS_WORKERS)] +
            ["egress[%d]" % i for i in range(EGRESS_WORKERS)])


def make_schedule(seed, total, gap, kinds_):
    """The events, drawn from the seed alone: [{"at": s, "kind": k, ...}] in time order."""
    rnd = random.Random(seed)
    out = []
    t = rnd.uniform(*gap)
    while t < total:
        kind = rnd.choice(kinds_)
        ev = {"at": round(t, 3), "kind": kind}
        if kind in ("kill9", "stop", "restart"):
            ev["target"] = rnd.choice(instances())
        if kind == "stop":
            ev["hold"] = round(rnd.uniform(1.0, 4.0), 3)
        elif kind == "sink":
            ev["hold"] = round(rnd.uniform(2.0, 6.0), 3)
        elif kind == "fault":
            ev["mode"] = rnd.choice(FAULT_MODES)
            ev["hold"] = round(rnd.uniform(1.0, 4.0), 3)
        out.append(ev)
        t += ev.get("hold", 0) + rnd.uniform(*gap)
    return out


class Soak:
    def __init__(self, a):
        self.a = a
        self.node = None
        self.sink = None
        self.client = None
        self.fault_ctl = None
        self.stopped = set()  # pids under SIGSTOP
        self.windows = []  # (start, end, kind) monotonic
        self.done = {}  # kind -> events carried out
        self.skipped = {}  # kind -> events skipped, with the reasons in self.notes
        self.notes = []
        self.max_queue = 0
        self.sampling = threading.Event()
        self.clock_offset = time.time() - time.monotonic()

    def say(self, text):
        sys.stderr.write("chaos-soak %7.1fs %s\n" % (time.monotonic() - self.t0, text))
        sys.stderr.flush()

    # ---- the node, the sink, the load

    def setup(self):
        global Node, Client, tally, all_delivered, crash_node_config, Sink, wait_for
        os.environ["RINGMAIL_BUILD_DIR"] = self.a.build_dir  # read by ringmail_node at import
        from ringmail_node import Node, wait_for
        from ringmail_sink import Sink
        from accounting import Client, all_delivered, crash_node_config, tally
        shim = os.path.join(self.a.build_dir, "tests", "fault", "ringmail_fault_shim.so")
        if "fault" in self.a.events and not os.path.exists(shim):
            self.a.events = [k for k in self.a.events if k != "fault"]
            self.notes.append("fault events skipped: no fault shim at %s (the faults branch builds it)" % shim)
            if not self.a.events:
                raise SystemExit("chaos-soak: no event kind left to run")
        self.schedule = make_schedule(self.a.seed, self.a.duration, self.a.interval, self.a.events)
        # the sink's record file and output live in the node's directory
        self.node = Node(**crash_node_config(0), ingress_workers=INGRESS_WORKERS, egress_workers=EGRESS_WORKERS)
        self.sink = Sink(self.node.tmp)
        self.node = self.retarget(self.node)
        env = None
        if "fault" in self.a.events:
            self.fault_ctl = os.path.join(self.node.tmp, "fault")
            env = {"LD_PRELOAD": shim, "RINGMAIL_FAULT_FILE": self.fault_ctl,
                   "RINGMAIL_FAULT_DIR": os.path.join(self.node.data_dir, "spool"),
                   # an ASan build: the preloaded shim comes before the ASan runtime in the link order
                   "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")}
            open(self.fault_ctl + ".hits", "w").close()
            os.chmod(self.fault_ctl + ".hits", 0o666)  # the spool runs as an unprivileged user under root
        text = json.dumps({"seed": self.a.seed, "duration_s": self.a.duration, "interval_s": self.a.interval,
                           "events": self.a.events, "rate": self.a.rate, "schedule": self.schedule}, indent=1)
        for path in [os.path.join(self.node.tmp, "schedule.json")] + ([self.a.schedule] if self.a.schedule else []):
            with open(path, "w") as f:
                f.write(text + "\n")
        self.node.start(env=env, wait_ready=False)
        self.node.wait_all_ready(timeout=30)

    def retarget(self, node):
        """The node's configuration with the sink's port (known only once the sink runs in node.tmp)."""
        with open(node.config_path) as f:
            text = f.read()
        with open(node.config_path, "w") as f:
            f.write(text.replace('hosts = ["[127.0.0.1]:0"]', 'hosts = ["[127.0.0.1]:%d"]' % self.sink.port))
        return node

    def start_load(self):
        rnd = random.Random(self.a.seed ^ 0x5eed)
        n = int(self.a.rate * (self.a.duration + 60)) + 100
        plan = [[""] * (1 + (rnd.random() < 0.3)) for _ in range(n)]
        threads = max(2, min(16, int(self.a.rate // 10) + 1))
        self.client = Client(self.node.smtp_port, TAG).start(
            plan, threads=threads, timeout=self.a.duration + 3600, pace=threads / self.a.rate)

    def sample(self):
        while not self.sampling.wait(1.0):
            try:
                self.max_queue = max(self.max_queue, self.node.counter("scheduler", "messages_queued"))
            except Exception:
                pass  # the supervisor is busy or a role is restarting: the next second

    # ---- the events

    def wait_ready(self, name, timeout=20):
        return wait_for(lambda: (lambda r: r if r["state"] == "ready" and r["pid"] > 0 else None)(
            self.node.instances()[name]), timeout, step=0.1, what="%s ready" % name)

    def run_event(self, ev):
        kind = ev["kind"]
        start = time.monotonic()
        try:
            getattr(self, "ev_" + kind)(ev)
            self.done[kind] = self.done.get(kind, 0) + 1
        except Skip as e:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
            self.notes.append("%.1fs %s skipped: %s" % (ev["at"], kind, e))
            self.say("%s skipped: %s" % (kind, e))
        self.windows.append((start - WINDOW_BEFORE, time.monotonic() + WINDOW_AFTER, kind))

    def target(self, ev):
        try:
            return self.wait_ready(ev["target"])
        except AssertionError:
            raise Skip("%s not ready within 20 s" % ev["target"])

    def ev_kill9(self, ev):
        r = self.target(ev)
        self.say("kill -9 %s pid %d" % (ev["target"], r["pid"]))
        try:
            os.kill(r["pid"], signal.SIGKILL)
        except ProcessLookupError:
            raise Skip("pid %d gone" % r["pid"])

    def ev_stop(self, ev):
        r = self.target(ev)
        self.say("SIGSTOP %s pid %d for %.1fs" % (ev["target"], r["pid"], ev["hold"]))
        try:
            os.kill(r["pid"], signal.SIGSTOP)
        except ProcessLookupError:
            raise Skip("pid %d gone" % r["pid"])
        self.stopped.add(r["pid"])
        time.sleep(ev["hold"])
        self.cont(r["pid"])

    def cont(self, pid):
        self.stopped.discard(pid)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # the supervisor killed it for its heartbeat meanwhile

    def ringctl(self, *args):
        try:
            return self.node.ringctl(*args)
        except subprocess.TimeoutExpired:
            self.violations.append("ringctl %s: no answer within 30 s" % " ".join(args))
            raise Skip("ringctl %s timed out" % " ".join(args))

    def ev_reload(self, ev):
        p = self.ringctl("reload")
        self.say("ringctl reload: exit %d %s" % (p.returncode, p.stdout.strip()[:120]))
        if p.returncode != 0:
            self.violations.append("ringctl reload of an unchanged valid configuration failed (%d): %s %s"
                                   % (p.returncode, p.stdout.strip(), p.stderr.strip()))

    def ev_restart(self, ev):
        r = self.target(ev)
        name = ev["target"]
        role, index = name[:-1].split("[")
        p = self.ringctl("restart", "%s/%s" % (role, index))
        self.say("ringctl restart %s/%s: exit %d %s" % (role, index, p.returncode, p.stdout.strip()[:120]))
        if p.returncode != 0:
            raise Skip("ringctl restart %s/%s: %s %s" % (role, index, p.stdout.strip(), p.stderr.strip()))
        try:
            wait_for(lambda: (lambda n: n["generation"] > r["generation"] and n["state"] == "ready")(
                self.node.instances()[name]), 30, step=0.1, what="%s restarted" % name)
        except AssertionError as e:
            self.violations.append("rolling restart of %s: %s" % (name, e))

    def ev_sink(self, ev):
        self.say("sink down for %.1fs" % ev["hold"])
        self.sink.stop()
        time.sleep(ev["hold"])
        self.sink_up()

    def sink_up(self):
        for _ in range(20):
            try:
                self.sink.start()
                self.say("sink up")
                return
            except OSError:
                time.sleep(0.25)  # the old listener's port is not free yet
        raise RuntimeError("ringmail-sink does not start again on port %d" % self.sink.port)

    def ev_fault(self, ev):
        self.say("spool disk fault %s for %.1fs" % (ev["mode"], ev["hold"]))
        with open(self.fault_ctl, "w") as f:
            f.write(ev["mode"] + "\n")
        time.sleep(ev["hold"])
        os.unlink(self.fault_ctl)

    def lift_all(self):
        for pid in list(self.stopped):
            self.cont(pid)
        if self.fault_ctl and os.path.exists(self.fault_ctl):
            os.unlink(self.fault_ctl)
        if self.sink and not self.sink.running():
            self.sink_up()

    # ---- the end: drain and account

    def deliveries(self):
        """recipient -> sorted monotonic times the sink recorded it (its arrived_us, a wall clock)."""
        out = {}
        for i, rec in enumerate(self.sink.records(), 1):
            if i == self.a.forget_delivery:
                continue
            t = rec["arrived_us"] / 1e6 - self.clock_offset
            for r in rec["rcpts"]:
                out.setdefault(r.lower(), []).append(t)
        for v in out.values():
            v.sort()
        return out

    def drain(self):
        end = time.monotonic() + self.a.drain_timeout
        while time.monotonic() < end:
            try:
                if all_delivered(self.client, self.deliveries()) and \
                        self.node.counter("scheduler", "messages_queued") == 0:
                    return True
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        return False

    def account(self):
        """The invariant; violations go to self.violations, numbers to the returned summary."""
        time.sleep(1.2)  # the spool flushes its log buffer every second
        # a difference is looked at again for a while (bounded by the drain's bound, 3 to 10 s)
        deadline = time.monotonic() + min(10.0, max(3.0, self.a.drain_timeout))
        while True:
            dels = self.deliveries()
            st, problems = tally(self.node, self.client, dels, True, self.windows)
            problems += self.unsent(dels, st)
            if st["no_reception_record"]:
                problems.append("%d recipients answered 250 have no Reception record" % st["no_reception_record"])
            if st["delivered_without_delivery_record"]:
                problems.append("%d delivered recipients have no Delivery record" %
                                st["delivered_without_delivery_record"])
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # log segments are flushed a moment after the spool state changed
        self.violations += problems
        return st

    def unsent(self, dels, st):
        """Deliveries of nothing the client got a 250 for: an attempt whose 250 was lost or that got a
        4xx after its commit (the client sent it again under new addresses) is at-least-once inside an
        event's window; outside one, or an address the client never made, it is a violation."""
        with self.client.lock:
            ok = {r.lower() for _, rcpts, _, _ in self.client.accepted for r in rcpts}
        problems = []
        st["delivered_without_250"] = {}
        for r, times in dels.items():
            if r in ok:
                continue
            if not ADDR_RE.match(r):
                problems.append("%s delivered %d times: not an address the client sent to" % (r, len(times)))
                continue
            hit = [w for w in self.windows if w[0] <= times[0] <= w[1]]
            if not hit:
                problems.append("%s delivered without a 250 to the client, outside any event" % r)
            else:
                kind = max(hit, key=lambda w: w[0])[2]  # the event closest after the delivery
                st["delivered_without_250"][kind] = st["delivered_without_250"].get(kind, 0) + 1
        return problems

    def roles_settled(self):
        """No role crashed by itself and none is left restarting: all ready, restarts unchanged for 3 s."""
        problems = ["a role crashed: %s" % line for line in self.node.crashes()[:10]]
        restarts = None
        try:
            inst = self.node.wait_all_ready(timeout=20)
            before = {k: v["restarts"] for k, v in inst.items()}
            time.sleep(3)
            after = self.node.instances()
            for k, v in after.items():
                if v["state"] != "ready" or v["restarts"] != before[k]:
                    problems.append("%s is %s with %d restarts (crash loop?)" % (k, v["state"], v["restarts"]))
            restarts = sum(v["restarts"] for v in after.values())
        except (AssertionError, OSError, ValueError, KeyError) as e:
            problems.append("not every role is ready after the soak: %s" % e)
        return problems, restarts

    # ---- the run

    def run(self):
        self.t0 = time.monotonic()
        self.violations = []
        self.setup()
        self.say("seed %d, %d events over %.0fs (%s), node in %s" % (
            self.a.seed, len(self.schedule), self.a.duration, ",".join(self.a.events), self.node.tmp))
        for n in self.notes:
            self.say(n)
        self.start_load()
        sampler = threading.Thread(target=self.sample, daemon=True)
        sampler.start()
        t_load = time.monotonic()
        try:
            for ev in self.schedule:
                if time.monotonic() - t_load >= self.a.duration:
                    self.notes.append("events from %.1fs on not reached: the ones before ran late" % ev["at"])
                    break
                delay = t_load + ev["at"] - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.run_event(ev)
            rest = t_load + self.a.duration - time.monotonic()
            if rest > 0:
                time.sleep(rest)
        finally:
            self.lift_all()
        self.client.stop()
        load_s = time.monotonic() - t_load
        self.say("load stopped after %.1fs: %d messages answered 250; draining" % (load_s, self.client.count()))
        drained = self.drain()
        if not drained:
            self.notes.append("the queue did not drain within %.0fs" % self.a.drain_timeout)
        self.sampling.set()
        st = self.account()
        settled, restarts = self.roles_settled()
        self.violations += settled
        if "fault" in self.a.events and self.done.get("fault"):
            with open(self.fault_ctl + ".hits") as f:
                st["fault_hits"] = sum(1 for _ in f)
        if "io_uring is not available" in self.node.log():
            self.notes.append("roles failed to start for want of io_uring memory (too many nodes on this "
                              "machine?): a violation may be the environment's; run again when it is quieter")
        if self.client.count() == 0:
            self.violations.append("no message was answered 250: %s" % self.client.errors[:5])
        return {
            "seed": self.a.seed, "duration_s": round(time.monotonic() - self.t0, 1), "load_s": round(load_s, 1),
            "rate": self.a.rate, "events": self.done, "events_skipped": self.skipped,
            "messages_accepted": st["accepted"], "recipients": st["recipients"], "delivered": st["delivered"],
            "duplicates": st["dups"], "duplicates_by_reason": st["dup_reasons"],
            "delivered_without_250": st["delivered_without_250"], "failed_attempts": st["failed_attempts"],
            "max_queue": self.max_queue, "queued_at_end": st["messages_queued"], "restarts": restarts,
            "fault_hits": st.get("fault_hits"),
            "results_dropped_by_scheduler": st["results_dropped_by_scheduler"],
            "notes": self.notes, "violations": self.violations,
        }

    def cleanup(self, failed):
        self.sampling.set()
        if self.client:
            self.client.stop_flag.set()
        try:
            self.lift_all()
        except Exception:
            pass
        if self.node:
            self.node.stop()
        if self.sink and self.sink.running():
            self.sink.kill()
        if self.node:
            if failed and self.a.keep:
                sys.stderr.write("chaos-soak: node directory kept at %s (schedule.json, ringmaild.log, data/logs, "
                                 "the sink's record-*.jsonl)\n" % self.node.tmp)
            else:
                shutil.rmtree(self.node.tmp, ignore_errors=True)


class Skip(Exception):
    pass


def main(argv):
    a = parse_args(argv)
    if not os.access(os.path.join(a.build_dir, "ringmaild"), os.X_OK):
        sys.stderr.write("chaos-soak: no ringmaild in %s (--build-dir)\n" % a.build_dir)
        return 2
    soak = Soak(a)
    failed = True

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)  # stop the node and the sink on the way out
    try:
        summary = soak.run()
        failed = bool(summary["violations"])
    except KeyboardInterrupt:
        sys.stderr.write("chaos-soak: interrupted (seed %d, the schedule in %s)\n" % (
            a.seed, os.path.join(soak.node.tmp, "schedule.json") if soak.node else "-"))
        return 1
    except Exception:  # the soak itself broke (the node did not start, say): no verdict
        traceback.print_exc()
        if soak.node:
            sys.stderr.write("---- ringmaild log (tail) ----\n%s\n" % soak.node.log()[-4000:])
        sys.stderr.write("chaos-soak: stopped by an error (seed %d)\n" % a.seed)
        return 2
    finally:
        soak.cleanup(failed)
    if a.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            if k not in ("violations", "notes"):
                print("%-30s %s" % (k, json.dumps(v)))
        for n in summary["notes"]:
            print("note: %s" % n)
        for v in summary["violations"][:50]:
            print("VIOLATION: %s" % v)
    if failed:
        sys.stderr.write("chaos-soak: %d violations; replay with --seed %d --duration %s --interval %s:%s "
                         "--events %s\n" % (len(summary["violations"]), a.seed, a.duration, a.interval[0],
                                            a.interval[1], ",".join(a.events)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
