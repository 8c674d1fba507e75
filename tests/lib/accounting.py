"""accounting - the accounting invariant of TESTING.md over a test client's own list of 250s.

Client sends messages from threads with smtplib and keeps every 250 it got (queue id from the reply,
recipients); tally() checks each such recipient against what a sink received, the node's log records
(Bounce/Expiration, Reception/Delivery) and the scheduler's queue. Used by tests/e2e/crash_test.py and
tools/chaos-soak.py.
"""
import json
import re
import smtplib
import threading
import time

ID_RE = re.compile(r"id=([0-9a-f]{32})")


class Client:
    """Sends messages from several threads; keeps its own record of every 250 (queue id, recipients).
    A failed attempt (error, 4xx, dropped connection) is retried with new addresses, so a message whose
    250 was lost can never be mistaken for the retry."""

    def __init__(self, port, tag):
        self.port = port
        self.tag = tag
        self.lock = threading.Lock()
        self.accepted = []  # (queue id, [rcpts], kinds, time)
        self.failed_attempts = 0
        self.errors = []
        self.threads = []
        self.stop_flag = threading.Event()

    def address(self, kind, msg, attempt, k):
        return "%s%sm%da%dr%d@a.test" % (kind, self.tag, msg, attempt, k)

    def one(self, conn, msg, attempt, kinds):
        rcpts = [self.address(kind, msg, attempt, k) for k, kind in enumerate(kinds)]
        code, _ = conn.mail("s@client.test")
        if code != 250:
            raise smtplib.SMTPResponseException(code, "MAIL")
        for r in rcpts:
            code, _ = conn.rcpt(r)
            if code != 250:
                raise smtplib.SMTPResponseException(code, "RCPT " + r)
        # every other message is past the spool's body log minimum (4 KiB): crashes hit both places bodies go
        pad = "" if msg % 2 else "line of a body long enough for the spool's body log, message %d\r\n" % msg * 90
        body = ("Subject: %s m%d a%d\r\nFrom: s@client.test\r\nMessage-ID: <%s.%d.%d@client.test>\r\n\r\n"
                "body of message %d\r\n%s" % (self.tag, msg, attempt, self.tag, msg, attempt, msg, pad)).encode()
        code, reply = conn.data(body)
        if code != 250:
            raise smtplib.SMTPResponseException(code, "DATA")
        m = ID_RE.search(reply.decode("latin-1"))
        if not m:
            raise AssertionError("250 without a queue id: %r" % reply)
        with self.lock:
            self.accepted.append((m.group(1), rcpts, kinds, time.monotonic()))

    def worker(self, jobs, deadline, pace):
        conn = None
        while not self.stop_flag.is_set():
            if pace:
                time.sleep(pace)
            with self.lock:
                if not jobs:
                    break
                msg, kinds = jobs.pop(0)
            for attempt in range(1000):
                if time.monotonic() > deadline or self.stop_flag.is_set():
                    break
                try:
                    if conn is None:
                        conn = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
                        conn.ehlo("client.test")
                    self.one(conn, msg, attempt, kinds)
                    break
                except (OSError, smtplib.SMTPException) as e:
                    with self.lock:
                        self.failed_attempts += 1
                        if len(self.errors) < 20:
                            self.errors.append(repr(e))
                    try:
                        if conn is not None:
                            conn.close()
                    except Exception:
                        pass
                    conn = None
                    time.sleep(0.1)
        if conn is not None:
            try:
                conn.quit()
            except Exception:
                pass

    def start(self, plan, threads=2, timeout=90, pace=0.0):
        """plan: list of per-message recipient kinds ("" normal, "tempfail", "permfail"); pace: a pause
        before each message of a thread, to spread the load over the fault period."""
        jobs = list(enumerate(plan))
        deadline = time.monotonic() + timeout
        for _ in range(threads):
            t = threading.Thread(target=self.worker, args=(jobs, deadline, pace), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def join(self, timeout=120):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        self.stop_flag.set()
        for t in self.threads:
            t.join(5)

    def stop(self):
        """End the load: each thread finishes the attempt it is in (bounded by its SMTP timeout)."""
        self.stop_flag.set()
        for t in self.threads:
            t.join(15)

    def running(self):
        return any(t.is_alive() for t in self.threads)

    def count(self):
        with self.lock:
            return len(self.accepted)


def crash_node_config(sink_port, queue="", supervisor=""):
    """Node() keyword arguments for a node under faults: every domain routed to the sink at sink_port,
    retries every 1-2 s, short egress timeouts, fast restarts and no crash-loop hold for the kills."""
    cfg = ('[route."*"]\nhosts = ["[127.0.0.1]:%d"]\n[queue.default]\nretry_interval = "1s"\n'
           'max_retry_interval = "2s"\n%s' % (sink_port, queue))
    eg = ('connect_timeout = "2s"\nbanner_timeout = "3s"\ncommand_timeout = "5s"\ndata_timeout = "8s"\n'
          'idle_timeout = "2s"')
    sv = 'restart_backoff = "100ms"\nrestart_backoff_max = "400ms"\ncrash_loop_limit = 1000\n' + supervisor
    return {"config_extra": cfg, "egress": eg, "supervisor": sv, "park_delivery": False}


def tally(node, client, deliveries, expect_empty=True, windows=(), max_dups=None, queued=None, abandoned=0):
    """The accounting invariant over client's list of 250s; returns (summary dict, list of violations).
    deliveries: recipient (lower case) -> sorted monotonic times the sink accepted it. windows:
    (start, end) or (start, end, reason) monotonic intervals in which a first delivery may be repeated
    (the crash windows; the window holding it that opened last names the reason in
    summary["dup_reasons"]);
    max_dups bounds the duplicates inside them when given. queued: the scheduler's messages_queued
    (read from node when None)."""
    records = node.log_records()
    final = {}
    logged = set()
    seen = set()
    for r in records:
        # the log is at least once: after a spool kill its write-ahead replay may write a record again,
        # byte for byte (docs/logs.md); a copy is not a second bounce, a second bounce has its own time
        key = json.dumps(r, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        if r.get("type") in ("Bounce", "Expiration"):
            final.setdefault((r["id"], r["recipient"].lower()), []).append(r["type"])
        elif r.get("type") in ("Reception", "Delivery"):
            logged.add((r["type"], r["id"], r.get("recipient", "").lower()))
    dels = deliveries
    problems = []
    pending_ids = set()
    st = {"accepted": 0, "recipients": 0, "delivered": 0, "bounced": 0, "expired": 0, "queued": 0,
          "dups": 0, "dups_in_window": 0, "dups_outside": 0, "dup_reasons": {},
          "no_reception_record": 0, "delivered_without_delivery_record": 0}
    with client.lock:
        acc = list(client.accepted)
    st["accepted"] = len(acc)
    for qid, rcpts, kinds, _ in acc:
        for r, kind in zip(rcpts, kinds):
            st["recipients"] += 1
            # not part of the invariant (that is judged by the sink), reported for diagnosis
            if ("Reception", qid, r.lower()) not in logged:
                st["no_reception_record"] += 1
            times = dels.get(r.lower(), [])
            if times and ("Delivery", qid, r.lower()) not in logged:
                st["delivered_without_delivery_record"] += 1
            fin = final.get((qid, r.lower()), [])
            if len(fin) > 1:
                problems.append("%s %s: %d final records %s" % (qid, r, len(fin), fin))
            if times and fin:
                problems.append("%s %s: delivered %d times and also %s" % (qid, r, len(times), fin[0]))
            elif times:
                st["delivered"] += 1
                if kind != "":
                    problems.append("%s %s: a refused recipient was delivered" % (qid, r))
                if len(times) > 1:
                    st["dups"] += len(times) - 1
                    hit = [w for w in windows if w[0] <= times[0] <= w[1]]
                    if hit:
                        st["dups_in_window"] += len(times) - 1
                        # the last window to open before the first copy: the event closest after it
                        w = max(hit, key=lambda w: w[0])
                        reason = w[2] if len(w) > 2 else "crash"
                        st["dup_reasons"][reason] = st["dup_reasons"].get(reason, 0) + len(times) - 1
                    else:
                        st["dups_outside"] += len(times) - 1
                        problems.append("%s %s: delivered %d times, first copy outside any crash window"
                                        % (qid, r, len(times)))
            elif fin:
                st["bounced" if fin[0] == "Bounce" else "expired"] += 1
                if kind == "":
                    problems.append("%s %s: %s for a recipient the sink accepts" % (qid, r, fin[0]))
                if kind == "permfail" and fin[0] != "Bounce":
                    problems.append("%s %s: %s instead of Bounce" % (qid, r, fin[0]))
            else:
                st["queued"] += 1
                pending_ids.add(qid)
                if kind == "permfail":
                    problems.append("%s %s: a 550 recipient is still queued" % (qid, r))
                elif kind == "":
                    problems.append("%s %s: neither delivered nor bounced (queued at best)" % (qid, r))
    if queued is None:
        queued = node.counter("scheduler", "messages_queued")
    st["messages_queued"] = queued
    if expect_empty and queued:
        problems.append("queue should be empty, scheduler messages_queued=%d" % queued)
    if len(pending_ids) > queued:
        problems.append("%d accepted messages have recipients in no final state but the scheduler "
                        "queues only %d: silently absent" % (len(pending_ids), queued))
    if max_dups is not None and st["dups_in_window"] > max_dups:
        problems.append("%d duplicates in the crash window, at most %d expected" % (st["dups_in_window"],
                                                                                    max_dups))
    st["failed_attempts"] = client.failed_attempts
    st["abandoned_at_sink"] = abandoned
    # results the scheduler threw away (a lease it had already ended): each is a possible duplicate
    st["results_dropped_by_scheduler"] = node.log().count("does not match an attempt in flight")
    return st, problems


def all_delivered(client, deliveries):
    """True when every normal recipient of every 250 is in deliveries."""
    with client.lock:
        acc = list(client.accepted)
    for _, rcpts, kinds, _ in acc:
        for r, kind in zip(rcpts, kinds):
            if kind == "" and r.lower() not in deliveries:
                return False
    return True
