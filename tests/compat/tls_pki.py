"""Certificates for the TLS tests, made with the `openssl` CLI: a CA in its own directory
that issues server and client certificates with `openssl ca` (which can back-date, for expired
ones), and the PEM keystore (key then chain) that `ssl.keystore.location` reads."""
import os
import pathlib
import subprocess

CA_CNF = """\
[ca]
default_ca = this_ca
[this_ca]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any_subject
unique_subject = no
[any_subject]
commonName = supplied
organizationalUnitName = optional
organizationName = optional
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
"""


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


class Ca:
    """A CA in its own directory, issuing with `openssl ca` (which can back-date)."""

    def __init__(self, root, name, cn):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "newcerts"))
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(CA_CNF)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("01\n")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={cn}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        self.cert = os.path.join(self.dir, "ca.pem")

    def issue(self, name, subject, ext, expired=False):
        """A key and certificate; `subject` in openssl's /A=../B=.. order (most general first,
        so RFC 2253 prints it the other way round). Returns (cert, key) paths."""
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                cwd=self.dir)
        validity = (["-startdate", "20200101000000Z", "-enddate", "20201231000000Z"] if expired
                    else ["-days", "2"])
        openssl("ca", "-batch", "-config", "ca.cnf", "-preserveDN", "-notext", "-extensions", ext,
                *validity, "-in", f"{name}.csr", "-out", f"{name}.pem", cwd=self.dir)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")

    def server_keystore(self, name="server"):
        """A server certificate for 127.0.0.1/localhost as one PEM file, key then certificate
        (what `ssl.keystore.location` reads). Returns (keystore, cert, key) paths."""
        cert, key = self.issue(name, "/O=Shoal/CN=localhost", "server_ext")
        keystore = os.path.join(self.dir, f"{name}.keystore.pem")
        pathlib.Path(keystore).write_text(pathlib.Path(key).read_text() +
                                          pathlib.Path(cert).read_text())
        return keystore, cert, key
