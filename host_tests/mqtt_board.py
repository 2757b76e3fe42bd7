# The board side of host_tests/test_mqtt_microdot_linux.py: our stack on AF_PACKET (MicroPython
# unix port), stack.install(net), then UNMODIFIED umqtt.simple / umqtt.robust / microdot.
# MIT licence. Commands on stdin, one reply line each ("ok ..." or "err ..."):
#
#   mqtt_board.py packet:IFACE OUR_IP BROKER_IP     prints READY
#     connect simple|robust ID   MQTTClient(ID, BROKER_IP).connect()
#     sub TOPIC QOS              subscribe
#     pub TOPIC QOS MSG          publish (QoS 1 waits for the PUBACK)
#     recv N                     wait_msg() until N messages came: "ok TOPIC=MSG ..."
#     check                      check_msg() once (umqtt.robust reconnects on a lost connection)
#     disconnect
#     serve PORT N [CERT KEY]    microdot app on PORT, over TLS with CERT and KEY (DER files,
#                                tls.SSLContext(PROTOCOL_TLS_SERVER)) if given; prints SERVING
#                                once it listens, then "ok served K" when it stopped: after N
#                                answered requests, or (N = 0) on "stop"
#     tcbs                       "ok used=U of=T tw=W": TCBs in use, pool size, TIME-WAIT
#                                (the stack: close_wait_recycle_ms=2000, for the test of it)
#     stats                      "ok k=v ...": our stack's tcp counters
#     netstat                    "ok ROW | ROW ...": stack.debug.netstat() on one line
#     gc off|on                  gc.disable() / gc.enable(): "ok" (while serving only)
#     quit (or EOF)
#
# While serving, stdin still takes "tcbs", "stats", "netstat" and "stop" (an asyncio task
# reads it).
# The app's routes: GET / (a greeting), GET /n/<int:i> (JSON), POST /echo ("LENGTH SHA256"
# of the body), GET /big/<int:n> (n bytes of "0123456789abcdef" repeated).

import sys

import select


def serve(argv):
    import stack
    from stack import Stack
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=argv[1], prefix=24, close_wait_recycle_ms=2000)
    broker = argv[2]
    stack.install(net)  # everything imported below runs over our stack
    got = []
    client = None
    stdin = select.poll()
    stdin.register(sys.stdin, select.POLLIN)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        while not stdin.poll(0):  # answer ARP and TCP while we wait for a command
            ms = net.poll()
            net.wait(20 if ms is None or ms > 20 else ms)
        words = sys.stdin.readline().split()
        if not words or words[0] == "quit":
            return
        try:
            cmd = words[0]
            out = "ok"
            if cmd == "connect":
                if words[1] == "robust":
                    from umqtt.robust import MQTTClient
                else:
                    from umqtt.simple import MQTTClient
                client = MQTTClient(words[2], broker)
                client.set_callback(lambda t, m: got.append((t, m)))
                client.connect()
            elif cmd == "sub":
                client.subscribe(words[1], qos=int(words[2]))
            elif cmd == "pub":
                client.publish(words[1], " ".join(words[3:]), qos=int(words[2]))
            elif cmd == "recv":
                while len(got) < int(words[1]):
                    client.wait_msg()
                out = "ok " + " ".join("%s=%s" % (t.decode(), m.decode()) for t, m in got)
                got.clear()
            elif cmd == "check":
                client.check_msg()
            elif cmd == "disconnect":
                client.disconnect()
                client = None
            elif cmd == "serve":
                out = "ok served %d" % _microdot(net, int(words[1]), int(words[2]),
                                                  words[3:5])
            elif cmd in ("tcbs", "stats", "netstat"):
                out = _report(net, cmd)
            else:
                out = "err unknown command"
        except OSError as e:
            out = "err OSError %r" % (e.args,)
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


def _report(net, cmd):
    """The answer to "tcbs" or "stats" (see the top)."""
    if cmd == "tcbs":
        return "ok used=%d of=%d tw=%d" % (len(net.tcbs) - net.free_tcb_count(),
                                           len(net.tcbs), net.tw.used)
    if cmd == "netstat":
        from stack.debug import netstat

        rows = []
        netstat(net, out=rows.append)
        return "ok " + " | ".join(" ".join(r.split()) for r in rows)
    from stack.stats import NAMES

    return "ok " + " ".join("%s=%d" % (k, getattr(net.stats, k)) for k in NAMES
                            if k.startswith("tcp"))


def _hex(b):
    return "".join("%02x" % x for x in b)


def _microdot(net, port_no, n, tls_files):
    """An unmodified microdot app on our stack (over TLS if tls_files is [CERT, KEY]),
    stopped after n answered requests, or by "stop" on stdin if n is 0."""
    import asyncio
    import hashlib

    from microdot import Microdot
    from stack import aio

    ctx = None
    if tls_files:
        import tls

        ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
        with open(tls_files[0], "rb") as cert, open(tls_files[1], "rb") as key:
            ctx.load_cert_chain(cert.read(), key.read())  # DER (this tls takes no PEM key)

    app = Microdot()
    count = [0]

    @app.route("/")
    async def index(request):
        return "hello from microdot"

    @app.route("/n/<int:i>")
    async def number(request, i):
        return {"i": i, "double": 2 * i}

    @app.route("/echo", methods=["POST"])
    async def echo(request):
        body = request.body
        return "%d %s" % (len(body), _hex(hashlib.sha256(body).digest()))

    @app.route("/big/<int:size>")
    async def big(request, size):
        return b"0123456789abcdef" * (size // 16)

    @app.after_request
    async def counted(request, response):
        count[0] += 1
        return response

    async def control():
        # stdin while serving: one reply line per command, as in serve()
        poller = select.poll()
        poller.register(sys.stdin, select.POLLIN)
        while app.server is None:
            await asyncio.sleep_ms(10)
        sys.stdout.write("SERVING\n")
        sys.stdout.flush()
        while n == 0 or count[0] < n:
            if poller.poll(0):
                cmd = sys.stdin.readline().strip()
                if cmd == "stop" or not cmd:
                    break
                if cmd in ("gc off", "gc on"):
                    import gc

                    gc.disable() if cmd == "gc off" else gc.enable()
                    reply = "ok"
                elif cmd in ("tcbs", "stats", "netstat"):
                    reply = _report(net, cmd)
                else:
                    reply = "err unknown command"
                sys.stdout.write(reply + "\n")
                sys.stdout.flush()
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(500)  # the last answer goes out first
        app.shutdown()

    async def main():
        aio.ensure_driver(net)  # net.poll() for asyncio's own streams over our sockets
        asyncio.create_task(control())
        await app.start_server(host="0.0.0.0", port=port_no, ssl=ctx)

    asyncio.run(main())
    return count[0]


if __name__ == "__main__":
    serve(sys.argv[1:])
