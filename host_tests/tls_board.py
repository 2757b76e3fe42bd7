# The board side of host_tests/test_tls_linux.py and host_tests/bench_tls.py (issue 12): our
# stack on AF_PACKET on the MicroPython unix port, stack.install(net), then MicroPython's own
# UNMODIFIED `tls` (C, mbedTLS), `ssl` (its Python wrapper), `asyncio` and `select` over our
# sockets. MIT licence. Commands on stdin, one reply line each ("ok ..." or "err ..."):
#
#   tls_board.py packet:IFACE OUR_IP LINUX_IP DIR      prints READY
#
# DIR holds DER files: ca.der (the test CA), other_ca.der (a CA that signed nothing here),
# board.der + board_key.der (our server's certificate, signed by ca.der). Commands take
# key=value words:
#
#   rev port= host= lines= [ca=ca.der] [mode=ctx|sslctx|legacy] [timeout=S]
#       blocking TLS client against `openssl s_server -rev`: send `lines` lines (line i is
#       _line(i)), read the reversed lines back: "ok CIPHER VERSION SHA256 MS", where SHA256
#       is of everything read. mode=ctx: tls.SSLContext(PROTOCOL_TLS_CLIENT), CERT_REQUIRED,
#       load_verify_locations(DIR/ca); mode=sslctx: the same through ssl.SSLContext
#       (load_verify_locations(cadata=...)); mode=legacy: ssl.wrap_socket(cert_reqs=
#       CERT_REQUIRED, cadata=...).
#       host is server_hostname. Errors: "err TYPE ARGS MS" (the socket is closed either
#       way; MS is the time the call took).
#   idle port= host= timeout=S
#       TLS connection to s_server -rev with the socket timeout S; read(10) with nothing
#       sent (times out), then one line and its reversal on the same connection:
#       "ok ERRNO MS SHA256" (the error of the first read, its duration, SHA-256 of the
#       reversed line read back).
#   www port= host= path= [ca=ca.der]
#       GET path from `openssl s_server -WWW` over a CERT_REQUIRED TLS connection:
#       "ok LENGTH SHA256" of the body.
#   serve port= n=
#       blocking TLS server (PROTOCOL_TLS_SERVER, load_cert_chain(board.der, board_key.der)):
#       prints SERVING once listening, then echoes n connections in turn, each until EOF:
#       "ok served N BYTES".
#   aclient port= host= lines=
#       asyncio.open_connection(ssl=ctx, server_hostname=host) against s_server -rev, with
#       stack.aio.ensure_driver(net): "ok SHA256" as for rev.
#   aserve port= n=
#       asyncio.start_server(ssl=sctx) echoing each connection until EOF; prints SERVING,
#       stops after n connections: "ok served N BYTES".
#   pollsetup lport= tcpport= tlsport= uport= host=
#       one select.poll() over: a listening TCP socket on lport, a TCP connection to
#       LINUX:tcpport, a TLS connection (CERT_REQUIRED, server_hostname=host) to
#       LINUX:tlsport, a UDP socket on uport; all registered for POLLIN.
#   pollnext ms=
#       poll until something is ready (at most ms): "ok NAME:FLAGS:INFO ..." for every
#       (object, flags) poll() gave, in its order ("ok" alone if none). Then each ready object
#       is served: listener -> accept() (INFO = the peer's port), tcp -> recv (INFO = the
#       bytes), tls -> read (INFO = the bytes), udp -> recvfrom (INFO = the bytes); POLLERR or
#       POLLHUP -> unregistered and closed (INFO = "-").
#   hs port= host= n= [nodelay=1]
#       n TLS handshakes (connect, wrap_socket CERT_REQUIRED, close) in turn: "ok MS MS ...";
#       nodelay=1 sets TCP_NODELAY on the socket first
#   get url=
#       the frozen `requests.get(url)`: "ok STATUS LENGTH SHA256 MS"
#   tcbs
#       drive the stack until every TCB is free again (at most 5 s): "ok FREE TOTAL"
#   stats
#       "ok k=v ..." (our tcp counters)
#   mem
#       "ok BYTES": gc.mem_free() after gc.collect()
#   quit (or EOF)

import sys
import time

import select


def _hex(b):
    return "".join("%02x" % x for x in b)


def _line(i):
    """The i-th line rev sends: 128 characters of digest hex, then a newline."""
    import hashlib

    a = _hex(hashlib.sha256(b"line %d" % i).digest())
    b = _hex(hashlib.sha256(b"more %d" % i).digest())
    return (a + b).encode() + b"\n"


def _ms(t0):
    return time.ticks_diff(time.ticks_ms(), t0)


class Board:
    def __init__(self, argv):
        import stack
        from stack import Stack
        from tools.links import make_link

        self.net = Stack(make_link(argv[0]), ip=argv[1], prefix=24)
        self.linux = argv[2]
        self.dir = argv[3]
        stack.install(self.net)  # before tls/ssl/asyncio/requests are used
        import socket  # ours now, as the libraries get it

        self.socket = socket
        self.poller = None

    def der(self, name):
        with open(self.dir + "/" + name, "rb") as f:
            return f.read()

    def client_ctx(self, ca="ca.der", mode="ctx"):
        if mode == "sslctx":  # micropython-lib's ssl.SSLContext, a Python wrapper
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.der(ca))
            return ctx
        import tls

        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        ctx.load_verify_locations(self.der(ca))  # the C method takes cadata positionally
        return ctx

    def server_ctx(self):
        import tls

        ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.der("board.der"), self.der("board_key.der"))
        return ctx

    def connect(self, port, timeout=10):
        s = self.socket.socket(self.socket.AF_INET, self.socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((self.linux, port))
        return s

    def wrap(self, s, host, ca="ca.der", mode="ctx"):
        if mode == "legacy":
            import ssl

            return ssl.wrap_socket(s, cert_reqs=ssl.CERT_REQUIRED, cadata=self.der(ca),
                                   server_hostname=host)
        return self.client_ctx(ca, mode).wrap_socket(s, server_hostname=host)

    # ---- commands ----------------------------------------------------------------------

    def cmd_rev(self, a):
        import hashlib

        t0 = time.ticks_ms()
        s = self.connect(int(a["port"]), float(a.get("timeout", 10)))
        try:
            try:
                t = self.wrap(s, a["host"], a.get("ca", "ca.der"), a.get("mode", "ctx"))
            except Exception as e:
                return "err %s %r %d" % (type(e).__name__, e.args, _ms(t0))
            cipher = t.cipher()
            n = int(a["lines"])
            for i in range(n):
                t.write(_line(i))
            # read(n) and readinto(buf) of an SSLSocket wait for all n bytes (or EOF), as
            # every MicroPython stream does; recv(n) is the one-shot read
            data = t.read(n * len(_line(0)))
            t.close()
            return "ok %s %s %s %d" % (cipher[0], cipher[1], _hex(hashlib.sha256(data).digest()),
                                       _ms(t0))
        finally:
            s.close()

    def cmd_idle(self, a):
        import hashlib

        # a read on an established TLS connection to an idle peer times out, then the same
        # connection carries a line and its reversal
        s = self.connect(int(a["port"]), float(a["timeout"]))
        try:
            t = self.wrap(s, a["host"])
            t0 = time.ticks_ms()
            try:
                t.read(10)
                return "err read returned"
            except OSError as e:
                first = "%s %d" % (e.args[0], _ms(t0))
            t.write(_line(0))
            back = t.read(len(_line(0)))
            t.close()
            return "ok %s %s" % (first, _hex(hashlib.sha256(back).digest()))
        finally:
            s.close()

    def cmd_www(self, a):
        import hashlib

        s = self.connect(int(a["port"]))
        try:
            t = self.wrap(s, a["host"], a.get("ca", "ca.der"))
            t.write(b"GET /%s HTTP/1.0\r\n\r\n" % a["path"].encode())
            data = t.read()  # to EOF: s_server -WWW closes after the body
            t.close()
        finally:
            s.close()
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            return "err %r" % head[:40]
        return "ok %d %s" % (len(body), _hex(hashlib.sha256(body).digest()))

    def _listener(self, port):
        srv = self.socket.socket(self.socket.AF_INET, self.socket.SOCK_STREAM)
        srv.bind(("0.0.0.0", port))
        srv.listen(2)
        return srv

    def cmd_serve(self, a):
        ctx = self.server_ctx()
        srv = self._listener(int(a["port"]))
        srv.settimeout(20)
        total = 0
        _say("SERVING")
        try:
            for _ in range(int(a["n"])):
                conn, _peer = srv.accept()
                try:
                    t = ctx.wrap_socket(conn, server_side=True)
                    for _ in range(100000):
                        data = t.recv(4096)  # what one record gave
                        if not data:
                            break
                        t.write(data)
                        total += len(data)
                    t.close()
                finally:
                    conn.close()
        finally:
            srv.close()
        return "ok served %s %d" % (a["n"], total)

    def cmd_aclient(self, a):
        import asyncio
        import hashlib

        from stack import aio

        ctx = self.client_ctx()
        n = int(a["lines"])

        async def main():
            aio.ensure_driver(self.net)
            r, w = await asyncio.open_connection(self.linux, int(a["port"]), ssl=ctx,
                                                 server_hostname=a["host"])
            for i in range(n):
                w.write(_line(i))
            await w.drain()
            h = hashlib.sha256()
            for _ in range(n):
                h.update(await r.readline())
            w.close()
            await w.wait_closed()
            return _hex(h.digest())

        try:
            return "ok " + asyncio.run(asyncio.wait_for(main(), 15))
        finally:
            aio.stop_driver(self.net)

    def cmd_aserve(self, a):
        import asyncio

        from stack import aio

        ctx = self.server_ctx()
        n = int(a["n"])
        done = [0, 0]
        errors = []

        async def echo(r, w):
            try:
                for _ in range(100000):
                    data = await r.read(4096)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
                    done[1] += len(data)
            except Exception as e:
                errors.append("%s%r" % (type(e).__name__, e.args))
            finally:
                w.close()
                await w.wait_closed()
                done[0] += 1

        async def main():
            aio.ensure_driver(self.net)
            srv = await asyncio.start_server(echo, "0.0.0.0", int(a["port"]), ssl=ctx)
            _say("SERVING")
            for _ in range(1000):
                if done[0] >= n:
                    break
                await asyncio.sleep_ms(20)
            srv.close()
            await srv.wait_closed()

        try:
            asyncio.run(asyncio.wait_for(main(), 20))
        finally:
            aio.stop_driver(self.net)
        if errors:
            return "err served %d %d %s" % (done[0], done[1], " ".join(errors))
        return "ok served %d %d" % (done[0], done[1])

    def cmd_pollsetup(self, a):
        sk = self.socket
        lst = self._listener(int(a["lport"]))
        tcp = self.connect(int(a["tcpport"]))
        tls_raw = self.connect(int(a["tlsport"]))
        t = self.wrap(tls_raw, a["host"])
        udp = sk.socket(sk.AF_INET, sk.SOCK_DGRAM)
        udp.bind(("0.0.0.0", int(a["uport"])))
        self.names = {}
        self.poller = select.poll()
        for name, obj in (("listen", lst), ("tcp", tcp), ("tls", t), ("udp", udp)):
            self.poller.register(obj, select.POLLIN)
            self.names[id(obj)] = (name, obj)
        self.keep = [tls_raw]
        return "ok"

    def cmd_pollnext(self, a):
        t0 = time.ticks_ms()
        limit = int(a["ms"])
        events = []
        while _ms(t0) < limit:
            events = self.poller.poll(50)
            if events:
                break
        out = ["ok"]
        for obj, flags in events:
            name, _ = self.names[id(obj)]
            if flags & (select.POLLERR | select.POLLHUP):
                info = "-"
                self.poller.unregister(obj)
                obj.close()
            elif name == "listen":
                conn, peer = obj.accept()
                self.keep.append(conn)
                info = str(peer[1])
            elif name == "udp":
                info = obj.recvfrom(100)[0].decode()
            elif name == "tls":
                info = obj.recv(100).decode()  # one-shot; read(n) would wait for all n
            else:
                info = obj.recv(100).decode()
            out.append("%s:%d:%s" % (name, flags, info))
        return " ".join(out)

    def cmd_hs(self, a):
        out = ["ok"]
        ctx = self.client_ctx()
        for _ in range(int(a["n"])):
            t0 = time.ticks_us()
            s = self.connect(int(a["port"]))
            if a.get("nodelay") == "1":
                s.setsockopt(self.socket.IPPROTO_TCP, self.socket.TCP_NODELAY, 1)
            try:
                ctx.wrap_socket(s, server_hostname=a["host"]).close()
            finally:
                s.close()
            out.append("%.1f" % (time.ticks_diff(time.ticks_us(), t0) / 1000))
        return " ".join(out)

    def cmd_get(self, a):
        import hashlib

        import requests

        t0 = time.ticks_us()
        r = requests.get(a["url"])
        try:
            body = r.content
        finally:
            r.close()
        ms = time.ticks_diff(time.ticks_us(), t0) / 1000
        return "ok %d %d %s %.1f" % (r.status_code, len(body),
                                     _hex(hashlib.sha256(body).digest()), ms)

    def cmd_tcbs(self, a):
        net = self.net
        t0 = time.ticks_ms()
        while net.free_tcb_count() < len(net.tcbs) and _ms(t0) < 5000:
            net.poll()
            net.wait(10)
        return "ok %d %d" % (net.free_tcb_count(), len(net.tcbs))

    def cmd_mem(self, a):
        import gc

        gc.collect()
        gc.collect()
        return "ok %d" % gc.mem_free()

    def cmd_stats(self, a):
        from stack.stats import NAMES

        return "ok " + " ".join("%s=%d" % (k, getattr(self.net.stats, k)) for k in NAMES
                                if k[:3] == "tcp")


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv):
    board = Board(argv)
    net = board.net
    stdin = select.poll()
    stdin.register(sys.stdin, select.POLLIN)
    _say("READY")
    while True:
        while not stdin.poll(0):  # answer ARP and TCP while we wait for a command
            ms = net.poll()
            net.wait(20 if ms is None or ms > 20 else ms)
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            return
        a = dict(w.split("=", 1) for w in words[1:])
        fn = getattr(board, "cmd_" + words[0], None)
        try:
            out = fn(a) if fn else "err unknown command"
        except Exception as e:
            out = "err %s %r" % (type(e).__name__, e.args)
        _say(out)


if __name__ == "__main__":
    main(sys.argv[1:])
