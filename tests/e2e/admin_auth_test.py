"""End-to-end tests of the admin API's access control (docs/admin-api.md, "Access control"): the token
file, bearer tokens on mutating calls, Origin and Host refusals, trusted networks, the Unix socket,
ringctl's defaults, and hostile clients (slowloris, a huge body, bad JSON).

Run one with:
    /usr/bin/python3 tests/e2e/admin_auth_test.py -k slowloris
"""
import hashlib
import http.client
import os
import pwd
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ringmail_node import BUILD_DIR, Node, free_port, wait_for  # noqa: E402

MESON = {"suite": "supervisor", "timeout": 240, "exclusive": True}
RINGCTL = os.path.join(BUILD_DIR, "ringctl")


def raw_request(port, data, source="127.0.0.1", timeout=10):
    """Send bytes as they are and return (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ConnectionError("no HTTP answer: %r" % out[:100])
    return int(head.split()[1]), body


def unix_get(path, url, headers=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    conn = http.client.HTTPConnection("localhost")
    conn.sock = s
    try:
        conn.request("GET", url, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class AdminCase(unittest.TestCase):
    node = None

    def start_node(self, admin_extra=""):
        self.node = Node()
        if admin_extra:
            self.node.write_config(self.node.base_config.replace(
                "[admin]\n", "[admin]\n%s\n" % admin_extra, 1))
        self.addCleanup(self.node.cleanup)
        self.node.start()
        return self.node

    def ringctl(self, *args, cwd=None):
        p = subprocess.run([RINGCTL] + list(args), capture_output=True, text=True, timeout=30, cwd=cwd)
        return p.returncode, p.stdout, p.stderr

    def run(self, result=None):
        res = super().run(result)
        if result is not None and (result.failures or result.errors) and self.node:
            sys.stderr.write("---- ringmaild log ----\n%s\n" % self.node.log()[-6000:])
        return res


class TokenTest(AdminCase):
    def test_token_file_mutating_calls_and_audit(self):
        node = self.start_node()
        st = os.stat(node.token_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        token = node.token()
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        if os.geteuid() == 0:
            self.assertEqual(st.st_uid, 0)
            self.assertEqual(st.st_gid, pwd.getpwnam("nobody").pw_gid)  # the [node] user's group
        # mutating: no token, a wrong one, the right one
        code, body = node.http("POST", "/api/v1/reload", token=False)
        self.assertEqual(code, 401, body)
        self.assertIn(b"admin token", body)
        code, _ = node.http("POST", "/api/v1/reload", token="0" * 64)
        self.assertEqual(code, 401)
        code, _ = node.http("POST", "/api/v1/reload", token="Bearer")
        self.assertEqual(code, 401)
        code, body = node.http("POST", "/api/v1/reload")
        self.assertEqual(code, 200, body)
        # any method other than GET/HEAD is mutating, also on a path that does not exist
        code, _ = node.http("DELETE", "/api/v1/nothing", token=False)
        self.assertEqual(code, 401)
        code, _ = node.http("DELETE", "/api/v1/nothing")
        self.assertEqual(code, 405)
        # the audit log: peer and token id, never the token
        tid = hashlib.sha256(token.encode()).hexdigest()[:8]
        wait_for(lambda: "admin: POST /api/v1/reload from 127.0.0.1:" in node.log(), 5, what="audit line")
        line = [l for l in node.log().splitlines() if "admin: POST /api/v1/reload" in l][0]
        self.assertIn("token id " + tid, line)
        self.assertNotIn(token, node.log())
        # ringctl finds the token in the data directory; without it, a mutating call is refused
        rc, out, err = self.ringctl("--endpoint", node.endpoint, "--data-dir", node.data_dir, "reload")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.ringctl("--endpoint", node.endpoint, "--data-dir", "/nonexistent", "reload")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("admin token", err)
        rc, _, err = self.ringctl("--endpoint", node.endpoint, "--token-file", "/nonexistent/t", "status")
        self.assertEqual(rc, 2)
        self.assertIn("/nonexistent/t", err)
        # the token survives a restart
        node.stop()
        node.start()
        self.assertEqual(node.token(), token)
        self.assertEqual(node.http("POST", "/api/v1/reload")[0], 200)

    def test_origin_and_host_refused(self):
        node = self.start_node()
        port = node.admin_port
        for method in ("GET", "POST"):
            code, body = node.http(method, "/api/v1/reload" if method == "POST" else "/api/v1/status",
                                   headers={"Origin": "http://evil.example"})
            self.assertEqual(code, 403, (method, body))
        code, _ = node.http("GET", "/api/v1/status", headers={"Origin": "null"})
        self.assertEqual(code, 403)
        for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1:%d" % (port + 1), "127.0.0.2:%d" % port,
                     "[::1]:%d" % port):
            code, _ = node.http("GET", "/api/v1/status", headers={"Host": host})
            self.assertEqual(code, 421, host)
        code, _ = node.http("POST", "/api/v1/reload", headers={"Host": "rebind.example"})
        self.assertEqual(code, 421)
        for host in ("127.0.0.1:%d" % port, "127.0.0.1", "localhost:%d" % port, "LOCALHOST"):
            code, _ = node.http("GET", "/api/v1/status", headers={"Host": host})
            self.assertEqual(code, 200, host)
        # no Host at all (HTTP/1.0): not a browser
        code, _ = raw_request(port, b"GET /api/v1/status HTTP/1.0\r\n\r\n")
        self.assertEqual(code, 200)


class TrustedNetworksTest(AdminCase):
    def test_read_only_from_loopback_by_default(self):
        node = self.start_node()
        self.assertEqual(node.http("GET", "/api/v1/status", token=False)[0], 200)
        self.assertEqual(node.http("GET", "/metrics", token=False)[0], 200)

    def test_no_trusted_networks_and_the_unix_socket(self):
        node = self.start_node('trusted_networks = []')
        code, body = node.http("GET", "/api/v1/status", token=False)
        self.assertEqual(code, 401, body)
        self.assertIn(b"trusted_networks", body)
        self.assertEqual(node.http("GET", "/api/v1/status")[0], 200)
        sock = os.path.join(node.data_dir, "admin.sock")
        st = os.stat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        # over the socket, read-only calls need no token; mutating ones do
        self.assertEqual(unix_get(sock, "/api/v1/status")[0], 200)
        # ringctl: the socket and the token are found in the data directory, no flag for either
        rc, out, err = self.ringctl("--data-dir", node.data_dir, "status")
        self.assertEqual(rc, 0, err)
        self.assertIn("node ", out)
        rc, out, err = self.ringctl("--data-dir", node.data_dir, "reload")
        self.assertEqual(rc, 0, err)
        self.assertIn("unix socket uid", node.log())
        # the socket without a token: reads work, a reload is refused
        rc, out, err = self.ringctl("--socket", sock, "--data-dir", "/nonexistent", "status")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.ringctl("--socket", sock, "--data-dir", "/nonexistent", "reload")
        self.assertEqual(rc, 1)
        self.assertIn("admin token", err)
        # the default data directory, relative to where ringctl runs: ./ringmail-data
        os.symlink(node.data_dir, os.path.join(node.tmp, "ringmail-data"))
        rc, out, err = self.ringctl("status", cwd=node.tmp)
        self.assertEqual(rc, 0, err)

    def test_no_node_says_what_to_do(self):
        port = free_port()
        rc, _, err = self.ringctl("--endpoint", "127.0.0.1:%d" % port, "status")
        self.assertEqual(rc, 3)
        self.assertIn("no node at 127.0.0.1:%d: is ringmaild running? (--endpoint)" % port, err)


class HostileClientTest(AdminCase):
    def test_slowloris_huge_body_bad_json(self):
        node = self.start_node()
        port = node.admin_port
        stop = threading.Event()
        slow = []
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /api/v1/status HTTP/1.1\r\n")
                slow.append(s)
            except OSError:
                pass

        def drip():
            while not stop.wait(2):
                for s in slow:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
        t = threading.Thread(target=drip, daemon=True)
        t.start()
        self.addCleanup(lambda: [s.close() for s in slow])
        self.addCleanup(t.join, 5)
        self.addCleanup(stop.set)
        time.sleep(1)
        # another client address is not held by the per-address limit
        t0 = time.monotonic()
        code, _ = raw_request(port, b"GET /api/v1/status HTTP/1.0\r\n\r\n", source="127.0.0.2")
        self.assertEqual(code, 200)
        self.assertLess(time.monotonic() - t0, 3)
        # the Unix socket is its own listener
        self.assertEqual(unix_get(os.path.join(node.data_dir, "admin.sock"), "/api/v1/status")[0], 200)

        # the same address gets in once the slow connections are cut at the request timeout (10 s)
        def answered():
            try:
                return raw_request(port, b"GET /api/v1/status HTTP/1.0\r\n\r\n", timeout=3)[0] == 200
            except OSError:
                return False
        wait_for(answered, 16, step=0.5, what="an answer from 127.0.0.1 despite 200 slow connections")
        wait_for(lambda: "did not send a whole request" in node.log(), 5, what="the sweep logged")

        token = node.token().encode()
        # a 10 MiB body is refused on its headers
        code, body = raw_request(port, b"POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                 token + b"\r\nContent-Length: %d\r\n\r\n" % (10 << 20))
        self.assertEqual(code, 413, body)
        # ... and so is a chunked one that grows past 1 MiB
        chunk = b"x" * 65536
        data = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
        code, body = raw_request(port, b"POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                 token + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + data)
        self.assertEqual(code, 413, body)
        # without the token, not even the headers of a large body are accepted
        code, _ = raw_request(port, b"POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                              % (10 << 20))
        self.assertEqual(code, 401)
        # bad JSON, and JSON that is not an object
        for bad in (b"{not json", b"[1, 2]", b'{"a": 1, "a": 2}'):
            code, body = raw_request(port, b"POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                     token + b"\r\nConnection: close\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n" % len(bad) + bad)
            self.assertEqual(code, 400, (bad, body))
        code, body = raw_request(port, b"POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                 token + b"\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}")
        self.assertEqual(code, 200, body)
        self.assertEqual(node.http("GET", "/api/v1/status")[0], 200)
        self.assertIsNone(node.proc.poll())


if __name__ == "__main__":
    unittest.main()
