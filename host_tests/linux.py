# Our stack against the Linux kernel's TCP: the fixtures that set a test up. MIT licence.
#
# Three setups, each in namespaces the test creates and removes:
#   tun-cpython        our stack (CPython) on a TUN whose kernel side is in namespace L
#   packet-cpython     our stack (CPython) on AF_PACKET in namespace U, veth to L
#   packet-micropython the same under the MicroPython unix port
#   w5500-cpython      our stack (CPython) on the W5500 driver + emulator (tools/w5500emu.py)
#                      bridged to AF_PACKET in namespace U, veth to L
# Linux's sockets live in L (created there with netns.inside). Our side is
# host_tests/agent.py in its own process, driven by one-line commands.

import hashlib
import os
import select
import socket
import subprocess
import sys
import threading
import time

import mp
import netns

ROOT = mp.ROOT
LINUX_IP = "10.9.0.1"
OUR_IP = "10.9.0.2"
SETUPS = ("tun-cpython", "packet-cpython", "packet-micropython", "w5500-cpython")
BLOCK = 65521


def pattern(n):
    """The same byte stream agent.py sends (LCG block of prime length, repeated)."""
    block = bytearray(BLOCK)
    x = 12345
    for i in range(BLOCK):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        block[i] = (x >> 16) & 0xFF
    reps = n // BLOCK + 1
    return bytes(block) * reps if n > BLOCK else bytes(block)


def pattern_sha(n):
    return hashlib.sha256(pattern(n)[:n]).hexdigest()


class Agent:
    """Our stack in a child process; cmd() sends one line and returns the reply line."""

    def __init__(self, argv, ns=None):
        env = dict(os.environ, PYTHONPATH=str(ROOT),
                   MICROPYPATH=os.pathsep.join([".frozen", str(ROOT), str(mp.HOST_TESTS)]))
        kw = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                  text=True, bufsize=1, cwd=ROOT, env=env)
        self.proc = ns.run(argv, **kw) if ns is not None else subprocess.Popen(argv, **kw)
        line = self._line(20)
        assert line.startswith("READY"), "did not start: %r %s" % (line, self._stderr())

    def _stderr(self):
        try:
            self.proc.kill()
            return self.proc.stderr.read()
        except Exception:
            return ""

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise AssertionError("agent silent for %ss: %s" % (timeout, self._stderr()))
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("agent exited: %s" % self._stderr())
        return line.strip()

    def cmd(self, line, timeout=60, ok=True):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self._line(timeout)
        if ok:
            assert reply.startswith("ok"), "%s -> %s" % (line, reply)
        return reply

    def stats(self):
        reply = self.cmd("stats")
        return dict((k, int(v)) for k, v in (kv.split("=") for kv in reply.split()[1:]))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


class Setup:
    """One of SETUPS: namespaces, devices, our agent, and a way to make Linux sockets."""

    def __init__(self, kind, agent_args=(), program="agent"):
        netns.require_root()
        self.kind = kind
        self.nses = []
        self.agent = None
        self.linux = self._ns()
        if kind == "tun-cpython":
            netns.require_tun()
            dev = netns.ifname("t")
            argv = [sys.executable, "-u"] + self._program(
                program, "tun:%s@%s" % (dev, self.linux.name)) + list(agent_args)
            self.agent = Agent(argv)
            self.linux.ip("addr", "add", LINUX_IP + "/24", "dev", dev)
            self.linux.ip("link", "set", dev, "up")
        else:
            ours = self._ns()
            _, vb = netns.veth(self.linux, ours, addr_a=LINUX_IP + "/24")
            interp = ([mp.micropython_cmd()] if kind.endswith("micropython")
                      else [sys.executable, "-u"])
            link = ("w5500emu:" if kind.startswith("w5500") else "packet:") + vb
            argv = interp + self._program(program, link) + list(agent_args)
            self.agent = Agent(argv, ns=ours)

    @staticmethod
    def _program(program, link):
        """agent.py (commands on stdin) or tools/host.py (a service), on link."""
        if program == "agent":
            return [str(mp.HOST_TESTS / "agent.py"), link, OUR_IP, "24"]
        return [str(ROOT / "tools" / "host.py"), link, OUR_IP + "/24"]

    def _ns(self):
        ns = netns.Netns().open()
        self.nses.append(ns)
        return ns

    def socket(self):
        with netns.inside(self.linux):
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def connect(self, port, timeout=10):
        s = self.socket()
        s.settimeout(timeout)
        s.connect((OUR_IP, port))
        return s

    def listen(self, port):
        s = self.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LINUX_IP, port))
        s.listen(8)
        s.settimeout(10)
        return s

    def ss(self, port):
        return netns.ss_states(self.linux, port)

    def close(self):
        if self.agent is not None:
            self.agent.close()
        for ns in reversed(self.nses):
            ns.close()


def linux_xfer(sock, n, timeout=120):
    """Send n pattern bytes from a thread while reading n bytes; SHA-256 of what was read."""
    data = pattern(n)[:n]
    err = []
    sock.settimeout(timeout)  # sendall's timeout covers the whole call

    def sender():
        try:
            sock.sendall(data)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    h = hashlib.sha256()
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, "timed out after %d of %d bytes" % (got, n)
        chunk = sock.recv(min(65536, n - got))
        assert chunk, "EOF after %d of %d bytes" % (got, n)
        h.update(chunk)
        got += len(chunk)
    t.join(timeout)
    assert not err, err
    return h.hexdigest()


def wait_for(cond, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)
