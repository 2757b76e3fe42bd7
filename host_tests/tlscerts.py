# Test certificates made with openssl (EC P-256, valid two days), PEM and DER side by side:
# PEM for openssl s_server, curl and CPython's ssl; DER for MicroPython's tls. CPython only.
# MIT licence.
#
#   tlscerts.ca(d, "ca")                         -> d/ca.pem, ca.der, ca_key.pem
#   tlscerts.leaf(d, "server", "server.lan", "ca") -> d/server.pem, .der, _key.pem, _key.der
#                                               (signed by ca, subjectAltName DNS:server.lan)
import subprocess

import netns


def _openssl(*args, cwd):
    subprocess.run([netns.require_tool("openssl")] + list(args), cwd=str(cwd), check=True,
                   capture_output=True, timeout=30)


def _der(d, name):
    _openssl("x509", "-in", name + ".pem", "-outform", "DER", "-out", name + ".der", cwd=d)


def ca(d, name):
    """A self-signed CA certificate and its key."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=%s test CA" % name, "-keyout",
             name + "_key.pem", "-out", name + ".pem", cwd=d)
    _der(d, name)


def leaf(d, name, cn, ca_name):
    """A server certificate for cn signed by ca_name, and its key (PEM and DER)."""
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-subj", "/CN=" + cn, "-keyout", name + "_key.pem", "-out",
             name + ".csr", cwd=d)
    (d / (name + ".ext")).write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:%s\n" % cn)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca_name + ".pem", "-CAkey",
             ca_name + "_key.pem", "-CAcreateserial", "-days", "2", "-extfile",
             name + ".ext", "-out", name + ".pem", cwd=d)
    _der(d, name)
    _openssl("pkey", "-in", name + "_key.pem", "-outform", "DER", "-out", name + "_key.der",
             cwd=d)
