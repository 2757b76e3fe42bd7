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
#     serve PORT N               microdot app on PORT until N requests were answered
#     quit (or EOF)

import sys

import select


def serve(argv):
    import stack
    from stack import Stack
    from tools.links import make_link

    link = make_link(argv[0])
    net = Stack(link, ip=argv[1], prefix=24)
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
                out = "ok served %d" % _microdot(net, int(words[1]), int(words[2]))
            else:
                out = "err unknown command"
        except OSError as e:
            out = "err OSError %r" % (e.args,)
        sys.stdout.write(out + "\n")
        sys.stdout.flush()


def _microdot(net, port_no, n):
    """An unmodified microdot app on our stack, stopped after n answered requests."""
    import asyncio

    from microdot import Microdot
    from stack import aio

    app = Microdot()
    count = [0]

    @app.route("/")
    async def index(request):
        return "hello from microdot"

    @app.route("/n/<int:i>")
    async def number(request, i):
        return {"i": i, "double": 2 * i}

    @app.after_request
    async def counted(request, response):
        count[0] += 1
        return response

    async def stopper():
        while count[0] < n:
            await asyncio.sleep_ms(20)
        await asyncio.sleep_ms(500)  # the last answer goes out first
        app.shutdown()

    async def main():
        aio.ensure_driver(net)  # net.poll() for asyncio's own streams over our sockets
        asyncio.create_task(stopper())
        await app.start_server(host="0.0.0.0", port=port_no)

    sys.stdout.write("SERVING\n")
    sys.stdout.flush()
    asyncio.run(main())
    return count[0]


if __name__ == "__main__":
    serve(sys.argv[1:])
