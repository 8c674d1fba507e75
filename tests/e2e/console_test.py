"""The web console at /ui/ (issue 11) in headless Chromium against a real node with real traffic: smtplib ->
node -> two recording sinks on their own loopback addresses, MX records from a real DNS server (unbound).
good.test's sink accepts; slow.test's answers every DATA with a scripted 421 (provider "slowprov" by the
shaping file), so the page has deliveries, deferrals and a last response to show. One node for the file:

- the page's numbers (totals, each provider row, each path row) equal the API's, read right after the
  DOM dump, and the screenshot is a real 1280x900 picture;
- the static files: types, CSP, ETag/304, only the embedded names, no token needed to fetch them;
- suspend through the page (DevTools protocol): without the token the button is disabled and a forced
  click shows the node's 401, nothing suspended; with the token typed in, the path is suspended (the API
  says so) and resume cancels it.

    RINGMAIL_BUILD_DIR=/tmp/build /usr/bin/python3 tests/e2e/console_test.py -k console
"""
import html.parser
import json
import os
import struct
import sys
import time
import unittest
import urllib.parse
import urllib.request
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import chromium  # noqa: E402
from ringmail_node import Node, smtp_send, wait_for  # noqa: E402
from peers import PeersCase, Sink, free_udp_tcp_port  # noqa: E402

MESON = {"suite": "console", "timeout": 120}

SHAPING = """
[provider."slowprov"]
match = [{MXSuffix = ".slow.test"}]
"""
TOTALS = ["messages", "scheduled", "ready", "in_flight", "queues", "paths", "added", "delivered", "transient",
          "bounced", "expired"]
ROW_COUNTS = ["connections", "queued", "delivered", "transient"]


class Metrics(html.parser.HTMLParser):
    """Every data-metric cell of the dumped DOM: {(table id, row key): {metric: text}}, the row key being its
    data-provider, data-path, data-queue or data-role (None for the totals row)."""

    def __init__(self):
        super().__init__()
        self.cells = {}
        self.table = self.row = self.metric = None
        self.text = ""
        self.updated = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
        elif tag == "tr":
            self.row = a.get("data-provider") or a.get("data-path") or a.get("data-queue") or a.get("data-role")
        elif tag == "td" and "data-metric" in a:
            self.metric, self.text = a["data-metric"], ""
        if a.get("id") == "updated":
            self.updated = int(a.get("data-updated", "0"))

    def handle_data(self, data):
        if self.metric:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "td" and self.metric:
            self.cells.setdefault((self.table, self.row), {})[self.metric] = self.text.strip()
            self.metric = None


def png_facts(path):
    """(width, height, distinct byte values of the decompressed pixel rows) of a PNG file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    return width, height, len(set(zlib.decompress(idat)))


class ConsoleTest(PeersCase):
    records = [
        "good.test. 60 IN MX 10 mx.good.test.",
        "mx.good.test. 60 IN A 127.0.0.2",
        "slow.test. 60 IN MX 10 mx.slow.test.",
        "mx.slow.test. 60 IN A 127.0.0.3",
    ]

    def start(self):
        port = free_udp_tcp_port("127.0.0.2")
        self.good = self.peer(Sink("127.0.0.2", port))
        self.slow = self.peer(Sink("127.0.0.3", port, data_reply="421 4.7.0 scripted deferral for the console"))
        eg = '\nresolver = "%s"\ndns_timeout = "500ms"\nport = %d' % (self.dns.address, port)
        eg += '\nconnect_timeout = "2s"\ncommand_timeout = "5s"\ndata_timeout = "5s"\nidle_timeout = "1s"'
        self.node = Node(egress=eg, park_delivery=False)
        shaping = os.path.join(self.node.tmp, "console-shaping.toml")
        with open(shaping, "w") as f:
            f.write(SHAPING)
        os.chmod(shaping, 0o644)
        # one attempt per message while the test runs: the counts stay still once it is made
        extra = '[queue.default]\nretry_interval = "1h"\nmax_retry_interval = "1h"\n'
        extra += '[shaping]\nfiles = ["%s"]\n' % shaping
        self.node.write_config(self.node.base_config + extra)
        self.node.start()
        self.url = "http://127.0.0.1:%d/ui/" % self.node.admin_port

    def api(self, path, token=False):
        code, body = self.node.http("GET", path, token=token)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def snapshot(self):
        """What the page shows from the API, as the API says it now (rates and ages left out)."""
        prov, paths = self.api("/api/v1/queue-summary?by=provider&limit=200"), self.api("/api/v1/queue-summary?limit=500")
        return ({k: prov["totals"][k] for k in TOTALS},
                {r["name"]: {k: r[k] for k in ROW_COUNTS} for r in prov["rows"]},
                {r["name"]: {k: r[k] for k in ROW_COUNTS} for r in paths["rows"]})

    def settled(self):
        """The snapshot once nothing moves: no connection open, nothing in flight, the same twice running."""
        last = [None]

        def still():
            s = self.snapshot()
            quiet = s[0]["in_flight"] == 0 and all(r["connections"] == 0 for r in s[1].values())
            same, last[0] = s == last[0], s
            return quiet and same
        wait_for(still, 20, step=0.3, what="the node's counts to settle")
        return last[0]

    def check_static_files(self):
        hdrs = {}
        for name, ctype in (("", "text/html"), ("app.js", "text/javascript"), ("style.css", "text/css")):
            req = urllib.request.Request(self.url + name)
            with urllib.request.urlopen(req, timeout=10) as r:
                self.assertEqual(r.status, 200)
                self.assertTrue(r.headers["Content-Type"].startswith(ctype), r.headers["Content-Type"])
                self.assertIn("default-src 'self'", r.headers["Content-Security-Policy"])
                self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
                hdrs[name] = r.headers
                body = r.read()
            for scheme in (b"http://", b"https://", b"//cdn"):
                self.assertNotIn(scheme, body, "no external URL in %s" % (name or "index.html"))
        etag = hdrs["app.js"]["ETag"]
        self.assertRegex(etag, r'^"[0-9a-f]{16}"$')
        code, _ = self.node.http("GET", "/ui/app.js", token=False, headers={"If-None-Match": etag})
        self.assertEqual(code, 304)
        # only the embedded names: traversal and anything else is 404, other methods 405
        for path in ("/ui/../api/v1/status", "/ui/%2e%2e/ringmail.toml", "/ui/app.js/", "/ui/x.js", "/ui//app.js",
                     "/ui/admin.token"):
            code, body = self.node.http("GET", path, token=False)
            self.assertIn(code, (404, 400), "%s: %d %r" % (path, code, body[:80]))
        code, _ = self.node.http("POST", "/ui/app.js")
        self.assertEqual(code, 405)
        # a foreign page's request is refused as before; the console's own origin passes (token still needed)
        status = "/api/v1/status"
        self.assertEqual(self.node.http("GET", status, token=False, headers={"Origin": "http://evil.test"})[0], 403)
        same = {"Origin": "http://127.0.0.1:%d" % self.node.admin_port}
        self.assertEqual(self.node.http("GET", status, token=False, headers=same)[0], 200)
        self.assertEqual(self.node.http("POST", "/api/v1/reload", token=False, headers=same)[0], 401)
        other_port = {"Origin": "http://127.0.0.1:%d" % (self.node.admin_port + 1)}
        self.assertEqual(self.node.http("GET", status, token=False, headers=other_port)[0], 403)

    def test_console_shows_the_api_counts_and_suspends_with_the_token_only(self):
        if not chromium.available():
            self.skipTest("chromium is not installed (tools/install-deps.sh)")
        self.start()
        for i in range(4):
            smtp_send(self.node.smtp_port, "s@good.test", "r%d@good.test" % i, b"Subject: t\r\n\r\nhello\r\n")
        for i in range(2):
            smtp_send(self.node.smtp_port, "s@good.test", "d%d@slow.test" % i, b"Subject: t\r\n\r\nhello\r\n")
        wait_for(lambda: self.good.count() == 4, 30, what="good.test delivered")
        wait_for(lambda: self.snapshot()[0]["transient"] >= 2, 30, what="slow.test deferred")
        before = self.settled()
        self.check_static_files()

        # the page's numbers against the API's, read right after the dump (they do not move any more)
        dom = chromium.dump_dom(self.url, budget_ms=3000)
        after = self.snapshot()
        self.assertEqual(before, after, "the node's counts moved during the dump")
        m = Metrics()
        m.feed(dom)
        self.assertGreaterEqual(m.updated, 1, "the page never loaded the API:\n" + dom[:3000])
        totals, providers, paths = after
        self.assertEqual(totals["delivered"], 4)
        self.assertEqual(totals["transient"], 2)
        shown = m.cells[("totals", None)]
        for k in TOTALS:
            self.assertEqual(shown[k], str(totals[k]), "totals %s" % k)
        self.assertIn("slowprov", providers)
        self.assertEqual(providers["slowprov"]["transient"], 2)
        for table, rows in (("providers", providers), ("paths", paths)):
            self.assertEqual({k[1] for k in m.cells if k[0] == table}, set(rows), table)
            for name, row in rows.items():
                for k in ROW_COUNTS:
                    self.assertEqual(m.cells[(table, name)][k], str(row[k]), "%s %s %s" % (table, name, k))
        self.assertIn("scripted deferral", m.cells[("providers", "slowprov")]["last_response"])
        roles = self.node.status()["roles"]
        for r in roles:
            cells = m.cells[("roles", "%s/%d" % (r["role"], r["index"]))]
            self.assertEqual((cells["pid"], cells["state"]), (str(r["pid"]), r["state"]))

        shot = os.path.join(self.node.tmp, "console.png")
        chromium.screenshot(self.url, shot, budget_ms=4000)  # two samples: the charts draw
        width, height, distinct = png_facts(shot)
        self.assertEqual((width, height), (1280, 900))
        self.assertGreater(os.path.getsize(shot), 20000)
        self.assertGreater(distinct, 50, "the screenshot is nearly blank")

        # suspend through the page: the slow path
        slow_path = [n for n in paths if n.endswith("->mx.slow.test")][0]
        row = "[...document.querySelectorAll('#paths tbody tr')].find(t => t.dataset.path === %s)" % \
            json.dumps(slow_path)
        button = row + ".querySelector('button')"
        b = chromium.Browser(self.url)
        try:
            b.wait("document.getElementById('updated').dataset.updated >= 1 && !!(%s)" % row, 15, "the paths")
            self.assertTrue(b.evaluate(button + ".disabled"), "suspend is enabled without the token")
            self.assertEqual(b.evaluate(button + ".dataset.action"), "suspend")
            # latency: from /metrics.json when the node serves it, else what exists (ring round trips), said so
            code, _ = self.node.http("GET", "/metrics.json", token=False)
            title = b.evaluate("document.getElementById('latency-title').textContent")
            if code == 404:
                self.assertIn("no /metrics.json", title)
            else:
                self.assertEqual(code, 200)
                self.assertTrue(title.startswith("Latency percentiles"), title)
            # the hook's reading of the documented histogram form (docs/admin-api.md, "Metrics")
            got = b.evaluate("""(() => {
                const doc = {ringmail_injection_to_delivery_seconds: {type: "histogram", samples: [
                  {labels: {provider: "a"}, buckets: [{le: 0.1, count: 5}, {le: 1, count: 9}, {le: "+Inf", count: 10}]},
                  {labels: {provider: "b"}, buckets: [{le: 0.1, count: 5}, {le: 1, count: 9}, {le: "+Inf", count: 10}]}]}};
                const b = histogramBuckets(doc, LATENCY_FAMILIES.delivery);
                const w = latencyWindow(b, b.map(x => ({le: x.le, count: Math.min(x.count, 10)})));
                return [b.map(x => x.count), percentile(b, 0.5), percentile(b, 0.9), percentile(b, 0.99),
                        percentile(w, 0.5), histogramBuckets({}, LATENCY_FAMILIES.ack)];
            })()""")
            self.assertEqual(got, [[10, 18, 20], 100, 1000, 1000, 1000, None])
            # forced: the page posts without a token and shows the node's refusal
            b.evaluate("(() => { const x = %s; x.disabled = false; x.click(); })()" % button)
            err = b.wait("!document.getElementById('error').hidden && document.getElementById('error').textContent",
                         10, "the refusal")
            self.assertIn("401", err)
            self.assertEqual(self.api("/api/v1/suspend-ready-q")["items"], [], "suspended without the token")
            self.assertEqual(self.snapshot(), after)

            # a wrong token: every call of the page is refused, and the page says so
            typed = "document.getElementById('token').value = %s; document.getElementById('token-save').click()"
            b.evaluate(typed % json.dumps("0" * 64))
            err = b.wait("document.getElementById('poll-error').textContent", 10, "the refusal of a wrong token")
            self.assertIn("401", err)
            b.evaluate("document.getElementById('token-forget').click()")
            b.wait("document.getElementById('poll-error').textContent === ''", 10, "the page reading again")
            self.assertTrue(b.evaluate(button + ".disabled"))

            b.evaluate(typed % json.dumps(self.node.token()))
            b.wait("!(%s).disabled" % button, 10, "the button enabled by the token")
            self.assertEqual(b.evaluate("sessionStorage.length"), 1)
            self.assertNotIn(self.node.token(), b.evaluate("location.href"))
            b.evaluate(button + ".click()")
            b.wait("!document.getElementById('notice').hidden", 10, "the suspend answer")
            items = self.api("/api/v1/suspend-ready-q")["items"]
            self.assertEqual([(i["source"] + "->" + i["site"], i["reason"]) for i in items],
                             [(slow_path, "web console")])
            summary = self.api("/api/v1/queue-summary?limit=500")
            self.assertGreater([r for r in summary["rows"] if r["name"] == slow_path][0]["suspended_ms"], 0)

            # the operator's suspension is a TSA effect of scope admin: the page's TSA table shows what the API does
            # (the scheduler republishes its TSA page asynchronously: wait for the page that has it)
            active = wait_for(lambda: (lambda a: a if any(e["rule_scope"] == "admin" for e in a) else None)(
                self.api("/api/v1/tsa/status")["active"]), 5, step=0.1, what="the admin effect on the TSA page")
            shown = b.wait("(() => { const r = [...document.querySelectorAll('#tsa-active tbody tr')]; "
                           "return r.length === %d && r.map(t => t.querySelector('[data-metric=scope]').textContent); "
                           "})()" % len(active), 10, "the TSA effects")
            self.assertEqual(sorted(shown), sorted(e["rule_scope"] for e in active))

            b.wait("(%s).dataset.action === 'resume'" % button, 10, "the resume button")
            b.evaluate(button + ".click()")
            b.wait("(%s).dataset.action === 'suspend'" % button, 10, "the path resumed")
            self.assertEqual(self.api("/api/v1/suspend-ready-q")["items"], [])

            # inspection: a click on slow.test's queue, then one of its messages by id
            queue = [q for q in self.api("/api/v1/queue-summary?limit=500")["queues"] if q["domain"] == "slow.test"][0]
            b.evaluate("[...document.querySelectorAll('#queues tbody tr')].find(t => t.dataset.queue === %s).click()"
                       % json.dumps(queue["name"]))
            out = "document.getElementById('inspect-out')"
            shown = json.loads(b.wait("%s.dataset.state === 'ok' && %s.textContent" % (out, out), 10, "inspect-sched-q"))
            want = self.api("/api/v1/inspect-sched-q?name=" + urllib.parse.quote(queue["name"]))
            self.assertEqual(shown["queue"]["messages"], want["queue"]["messages"])
            self.assertEqual(sorted(m["id"] for m in shown["messages"]), sorted(m["id"] for m in want["messages"]))
            mid = want["messages"][0]["id"]
            b.evaluate("document.getElementById('inspect-message').value = %s; "
                       "document.querySelector('#inspect-message-form button').click()" % json.dumps(mid))
            shown = json.loads(b.wait("%s.dataset.state === 'ok' && JSON.parse(%s.textContent).id === %s && %s.textContent"
                                      % (out, out, json.dumps(mid), out), 10, "inspect-message"))
            self.assertEqual(shown["recipients_queued"], 1)
            self.assertTrue(shown["recipients"][0]["recipient"].endswith("@slow.test"))
        finally:
            b.close()
        self.assertIn("admin: POST /api/v1/suspend-ready-q", self.node.log())


if __name__ == "__main__":
    unittest.main()
