"""A test PKI made with the openssl CLI: a CA and leaf certificates for loopback TLS servers in tests
(egress_tls_test.py's receivers, mta_sts_test.py's receivers and policy host)."""
import os
import ssl
import subprocess

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, cn="ringmail egress test CA"):
    """ca.pem / ca.key in d, valid two days."""
    openssl("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=%s" % cn, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, name, names):
    """NAME.pem / NAME.key in d, signed by d's CA, for the DNS names given (the first is the CN)."""
    sans = ",".join("DNS:" + n for n in names)
    openssl("req", *EC, "-keyout", name + ".key", "-out", name + ".csr", "-subj",
            "/CN=%s/O=ringmail test" % names[0], cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" % sans)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)


def server_context(d, name):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
    return ctx
