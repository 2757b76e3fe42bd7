# Our stack's side of the tests against Linux: a command-driven agent.
# MIT licence. Runs under CPython and the MicroPython unix port alike.
#
#   agent.py LINK IP PREFIX [--msl-ms N] [--tw-slots N] [--lossy SEED] [--rx N] [--tx N]
#   LINK: tun:NAME[@NETNS] (CPython) | tap:NAME[@NETNS] (CPython) | packet:IFACE
#         | w5500emu:IFACE (the W5500 driver on tools/w5500emu.py, bridged to IFACE)
#
# It brings the stack up, prints "READY", then reads one command per line on stdin and
# answers one line ("ok ..." or "err ..."), polling the stack all the while (waiting on
# the link's fd, stdin and the next timer). The Linux side of a test drives it with
# commands such as "listen 80", "accept", "xfer 8388608", "close", "conns".
#
# "hold" stops polling until the next command arrives: the test uses it to make FINs
# cross (simultaneous close): Linux's FIN waits unread while our close() sends ours.

import sys

try:
    import select
except ImportError:  # pragma: no cover
    import uselect as select

from stack import SHUT_WR, Stack, port
from stack.link.lossy import Lossy
from tools.links import make_link

try:
    import hashlib
except ImportError:  # pragma: no cover
    hashlib = None

BLOCK = 65521  # the pattern repeats with a prime period, so a shifted byte changes the hash


def _now_us():
    try:
        import time

        return int(time.perf_counter() * 1e6)  # CPython
    except AttributeError:
        return port.ticks_ms() * 1000


def say(line):
    sys.stdout.write(line + "\n")
    flush = getattr(sys.stdout, "flush", None)
    if flush:
        flush()


def pattern_block():
    out = bytearray(BLOCK)
    x = 12345
    for i in range(BLOCK):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (x >> 16) & 0xFF
    return out


def errname(code):
    for name in ("ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "ENOTCONN", "EAGAIN"):
        if getattr(port, name) == code:
            return name
    return str(code)


class Agent:
    def __init__(self, argv):
        opts = {"--msl-ms": 1000, "--tw-slots": 8, "--rx": 16384, "--tx": 16384,
                "--lossy": 0, "--tcbs": 8, "--trace": 0}
        pos = []
        i = 0
        while i < len(argv):
            if argv[i] in opts:
                opts[argv[i]] = int(argv[i + 1])
                i += 2
            else:
                pos.append(argv[i])
                i += 1
        link = make_link(pos[0])
        self.raw_link = link
        if opts["--lossy"]:
            link = Lossy(link, seed=opts["--lossy"], loss=0.02, dup=0.01, reorder=0.02,
                         corrupt=0.01)
        self.link = link
        self.net = Stack(link, ip=pos[1], prefix=int(pos[2]), msl_ms=opts["--msl-ms"],
                         tw_slots=opts["--tw-slots"], rx_buf=opts["--rx"],
                         tx_buf=opts["--tx"], tcbs=opts["--tcbs"])
        if opts["--trace"]:
            self.net.tracer = self.trace
        self.listener = None
        self.sock = None
        self.block = pattern_block()
        self.buf = bytearray(4096)
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.poller.register(link.fileno(), select.POLLIN)
        self.due = 0  # what the last poll() said: ms until a timer, None for none
        self.link_poller = select.poll()  # the link alone: pump() sleeps on it
        self.link_poller.register(link.fileno(), select.POLLIN)

    def trace(self, direction, buf, ip, n):
        t = ip + (buf[ip] & 0x0F) * 4
        sys.stderr.write("%d %s %d>%d flags=%02x seq=%02x%02x%02x%02x\n" % (
            _now_us(), direction, (buf[t] << 8) | buf[t + 1], (buf[t + 2] << 8) | buf[t + 3],
            buf[t + 13], buf[t + 4], buf[t + 5], buf[t + 6], buf[t + 7]))

    # ---- the loop ----------------------------------------------------------------------

    def pump(self, ms):
        """Poll the stack for about ms, sleeping on the link's fd between timers."""
        start = port.ticks_ms()
        while True:
            due = self.net.poll()
            left = ms - port.ticks_diff(port.ticks_ms(), start)
            if left <= 0:
                return
            wait = left if due is None or due > left else due
            if wait > 0:
                self.link_poller.poll(wait)

    def until(self, cond, timeout_ms):
        """Poll until cond() holds; after each poll sleep on the link (at most 1 ms, less
        if a timer is due sooner) and check again as soon as a frame arrives."""
        start = port.ticks_ms()
        while not cond():
            if port.ticks_diff(port.ticks_ms(), start) > timeout_ms:
                return False
            self.wait_once()
        return True

    def wait_once(self):
        """Sleep on the link until a frame comes (at most 1 ms, less if the last poll said a
        timer is due sooner), then poll. The caller checks its condition after each call,
        so work a poll made possible is seen at once, never after a sleep."""
        due = self.due
        if due is None or due > 0:
            self.link_poller.poll(1 if due is None or due > 1 else due)
        self.due = self.net.poll()

    def run(self):
        say("READY")
        holding = False
        while True:
            due = self.net.poll() if not holding else None
            wait = -1 if holding or due is None else due
            if wait > 50 or wait < 0 and not holding:
                wait = 50
            events = self.poller.poll(wait)
            for obj, ev in events:
                if not (obj is sys.stdin or obj == 0):
                    continue  # the link: the next poll() reads it
                line = sys.stdin.readline()
                if not line:
                    return
                words = line.split()
                if not words:
                    continue
                holding = words[0] == "hold"
                try:
                    reply = getattr(self, "cmd_" + words[0])(*words[1:])
                except OSError as e:
                    reply = "err " + errname(e.args[0])
                say(reply)

    # ---- commands ----------------------------------------------------------------------

    def cmd_hold(self):
        return "ok holding"

    def cmd_listen(self, p, backlog="4"):
        s = self.net.socket()
        s.setblocking(False)
        s.bind(("0.0.0.0", int(p)))
        s.listen(int(backlog))
        self.listener = s
        return "ok"

    def cmd_accept(self, timeout_ms="10000"):
        got = []

        def ready():
            try:
                got.append(self.listener.accept())
                return True
            except OSError:
                return False

        if not self.until(ready, int(timeout_ms)):
            return "err timeout"
        self.sock, addr = got[0]
        self.sock.setblocking(False)
        return "ok %s:%d" % addr

    def cmd_connect(self, ip, p, timeout_ms="10000"):
        s = self.net.socket()
        s.setblocking(False)
        self.sock = s
        try:
            s.connect((ip, int(p)))
        except OSError as e:
            if e.args[0] != port.EINPROGRESS:
                raise
        self.until(lambda: s.state != "SYN-SENT", int(timeout_ms))
        if s.state == "ESTABLISHED":
            return "ok"
        try:
            s.connect((ip, int(p)))  # raises the reason
        except OSError as e:
            return "err " + errname(e.args[0])
        return "err " + s.state

    def cmd_xfer(self, n, timeout_ms="120000"):
        """Send n pattern bytes and receive n bytes at once; answer the received SHA-256."""
        n = int(n)
        s = self.sock
        block = memoryview(self.block)
        h = hashlib.sha256()
        st = {"sent": 0, "got": 0}

        def step():
            if st["sent"] < n:
                off = st["sent"] % BLOCK
                k = n - st["sent"]
                if k > BLOCK - off:
                    k = BLOCK - off
                try:
                    st["sent"] += s.send(block[off:off + k])
                except OSError as e:
                    if e.args[0] != port.EAGAIN:
                        raise
            while st["got"] < n:
                try:
                    k = s.recv_into(self.buf)
                except OSError as e:
                    if e.args[0] != port.EAGAIN:
                        raise
                    break
                if not k:
                    raise OSError(port.ECONNRESET)  # EOF too early
                h.update(memoryview(self.buf)[:k])
                st["got"] += k
            return st["sent"] == n and st["got"] == n

        if not self.until(step, int(timeout_ms)):
            return "err timeout sent=%d got=%d" % (st["sent"], st["got"])
        return "ok " + "".join("%02x" % b for b in h.digest())

    def cmd_sink(self, n, timeout_ms="300000", hashing="1"):
        """Receive n bytes (Linux -> stack); answer their SHA-256 ('-' with hashing 0)."""
        n = int(n)
        s = self.sock
        h = hashlib.sha256() if hashing == "1" else None
        st = [0]

        def step():
            while st[0] < n:
                try:
                    k = s.recv_into(self.buf)
                except OSError as e:
                    if e.args[0] != port.EAGAIN:
                        raise
                    return False
                if not k:
                    raise OSError(port.ECONNRESET)
                if h is not None:
                    h.update(memoryview(self.buf)[:k])
                st[0] += k
            return True

        if not self.until(step, int(timeout_ms)):
            return "err timeout got=%d" % st[0]
        if h is None:
            return "ok -"
        return "ok " + "".join("%02x" % b for b in h.digest())

    def cmd_source(self, n, timeout_ms="300000"):
        """Send n pattern bytes (stack -> Linux)."""
        n = int(n)
        s = self.sock
        block = memoryview(self.block)
        st = [0]

        def step():
            while st[0] < n:
                off = st[0] % BLOCK
                k = n - st[0]
                if k > BLOCK - off:
                    k = BLOCK - off
                try:
                    sent = s.send(block[off:off + k])
                except OSError as e:
                    if e.args[0] != port.EAGAIN:
                        raise
                    return False
                if not sent:
                    return False
                st[0] += sent
            return True

        if not self.until(step, int(timeout_ms)):
            return "err timeout sent=%d" % st[0]
        return "ok %d" % n

    def cmd_echo_loop(self, timeout_ms="300000"):
        """Echo whatever arrives until EOF; answer how many bytes went round."""
        s = self.sock
        total = [0]
        done = [False]

        def step():
            try:
                k = s.recv_into(self.buf)
            except OSError as e:
                if e.args[0] != port.EAGAIN:
                    raise
                return False
            if not k:
                done[0] = True
                return True
            s.send(memoryview(self.buf)[:k])
            total[0] += k
            return False

        self.until(step, int(timeout_ms))
        return "ok %d" % total[0]

    def cmd_send(self, text):
        return "ok %d" % self.sock.send(text.encode())

    def cmd_recv(self, timeout_ms="5000"):
        """Whatever arrives next (up to 4096 bytes), 'eof', or the error."""
        out = []

        def ready():
            try:
                k = self.sock.recv_into(self.buf)
            except OSError as e:
                if e.args[0] == port.EAGAIN:
                    return False
                out.append("err " + errname(e.args[0]))
                return True
            out.append("ok " + bytes(self.buf[:k]).decode() if k else "ok eof")
            return True

        if not self.until(ready, int(timeout_ms)):
            return "err timeout"
        return out[0]

    def cmd_close_on_eof(self):
        """Close the moment the peer's FIN is seen, before the ACK for it leaves: our FIN
        then carries that ACK (a three-way close)."""
        sock = self.sock

        def react():
            if sock.poll_flags() & 1:
                try:
                    if sock.recv_into(self.buf) == 0:
                        sock.close()
                        self.net.after_input = None
                except OSError:
                    pass

        self.net.after_input = react
        return "ok"

    def cmd_shutdown(self):
        self.sock.shutdown(SHUT_WR)
        return "ok"

    def cmd_close(self):
        self.sock.close()
        return "ok"

    def cmd_lingering_close(self, timeout_ms="2000"):
        self.sock.lingering_close(int(timeout_ms))
        return "ok"

    def cmd_abort(self):
        self.sock.abort()
        return "ok"

    def cmd_state(self):
        return "ok " + self.sock.state

    def cmd_conns(self):
        return "ok " + " ".join("%d:%s:%d:%s" % (c[1], c[2], c[3], c[4])
                                for c in self.net.connections() if c[4] != "LISTEN")

    def cmd_wait_conns(self, want, timeout_ms="10000"):
        """Poll until connections() is exactly `want` ('-' for none) or time runs out."""
        target = "" if want == "-" else want

        def ok():
            return " ".join(c[4] for c in self.net.connections() if c[4] != "LISTEN") == \
                target.replace(",", " ")

        if self.until(ok, int(timeout_ms)):
            return "ok"
        return "err " + self.cmd_conns()

    def cmd_pump(self, ms):
        self.pump(int(ms))
        return "ok"

    def cmd_stats(self):
        out = " ".join("%s=%d" % kv for kv in self.net.stats.items())
        link = self.link
        if isinstance(link, Lossy):
            out += " lossy_dropped=%d lossy_corrupted=%d lossy_duplicated=%d " \
                   "lossy_reordered=%d" % (link.dropped, link.corrupted, link.duplicated,
                                           link.reordered)
        return "ok " + out

    def cmd_serve(self, count, reply_len="100", timeout_ms="60000"):
        """Accept `count` connections one after another: read a request, write reply_len
        bytes, close first (so TIME-WAIT lands here). Answers how many were served."""
        count = int(count)
        reply = b"r" * int(reply_len)
        served = 0
        start = port.ticks_ms()
        conns = []
        while served < count:
            if port.ticks_diff(port.ticks_ms(), start) > int(timeout_ms):
                return "err timeout served=%d" % served
            self.wait_once()
            try:
                c, _ = self.listener.accept()
                c.setblocking(False)
                conns.append(c)
            except OSError:
                pass
            for c in conns[:]:
                try:
                    k = c.recv_into(self.buf)
                except OSError as e:
                    if e.args[0] == port.EAGAIN:
                        continue
                    k = 0
                if k:
                    c.send(reply)
                    c.lingering_close(2000)
                else:
                    c.close()
                conns.remove(c)
                served += 1
        return "ok %d" % served

    def cmd_udp_bind(self, p):
        """A UDP socket on port p (answered once bound, so a test's first datagram finds it)."""
        u = self.net.socket(2, 2)  # AF_INET, SOCK_DGRAM
        u.setblocking(False)
        u.bind(("0.0.0.0", int(p)))
        self.udp = u
        return "ok"

    def cmd_udp_echo(self, count, timeout_ms="20000"):
        """Echo `count` datagrams arriving on the udp_bind socket to their senders, then
        close it; answer how many went back."""
        u = self.udp
        done = [0]

        def step():
            try:
                k, addr = u.recvfrom_into(self.buf)
            except OSError as e:
                if e.args[0] != port.EAGAIN:
                    raise
                return False
            u.sendto(memoryview(self.buf)[:k], addr)
            done[0] += 1
            return done[0] >= int(count)

        ok = self.until(step, int(timeout_ms))
        u.close()
        return ("ok %d" if ok else "err timeout echoed=%d") % done[0]

    def cmd_quit(self):
        sys.exit(0)


def main():
    argv = sys.argv[1:]
    try:
        agent = Agent(argv)
    except OSError as e:
        say("err " + str(e))
        sys.exit(2)
    agent.run()


main()
