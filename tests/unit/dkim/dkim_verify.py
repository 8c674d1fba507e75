"""dkim_verify - checks the messages dkim_sign_test wrote with python3-dkim (an independent verifier).

    /usr/bin/python3 dkim_verify.py DIR

DIR holds NAME.eml files (every DKIM-Signature in each must verify) and NAME.bad.eml files (the first
signature must NOT verify: the message was changed after signing), and keys.txt with one
"NAME TXT-RECORD" line per selector (NAME like sel._domainkey.example.test.). The TXT records are
served through dkim's dnsfunc hook, so no DNS server is needed here (the e2e test uses a real one).
Exit 0: all as expected; 1: a mismatch (printed); 77: python3-dkim is not installed.
"""
import os
import sys

try:
    import dkim
except ImportError:
    print("SKIP: python3-dkim is not installed")
    sys.exit(77)


def main():
    d = sys.argv[1]
    keys = {}
    with open(os.path.join(d, "keys.txt")) as f:
        for line in f:
            name, txt = line.rstrip("\n").split(" ", 1)
            keys[name.rstrip(".").lower()] = txt.encode()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return keys.get(name.rstrip(".").lower())

    bad = 0
    checked = 0
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".eml"):
            continue
        with open(os.path.join(d, fn), "rb") as f:
            msg = f.read()
        n = sum(1 for line in msg.split(b"\r\n\r\n", 1)[0].split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
        want = not fn.endswith(".bad.eml")
        if n == 0:
            print("FAIL %s: no DKIM-Signature" % fn)
            bad += 1
            continue
        for i in range(n if want else 1):
            why = ""
            try:
                ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)
            except dkim.DKIMException as e:
                ok, why = False, str(e)
            checked += 1
            if bool(ok) != want:
                print("FAIL %s: signature %d %s %s" % (fn, i, "did not verify" if want else "verified after a change",
                                                      why))
                bad += 1
    print("dkim_verify: %d signatures checked, %d wrong" % (checked, bad))
    sys.exit(1 if bad or checked == 0 else 0)


if __name__ == "__main__":
    main()
