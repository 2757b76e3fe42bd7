# Small services on the asyncio streams: echo, discard, chargen (RFC 862, 863, 864), HTTP.
# SPDX-License-Identifier: MIT
#
#     server = await aio.start_server(net, services.http(net), "0.0.0.0", 80)
#
# Each factory returns a client_connected_cb(reader, writer) coroutine function.

_CHUNK = 1024  # not const(): host_tests/test_aio.py reads it


def echo(net=None):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        writer.close()
        await writer.wait_closed()

    return handle


def discard(net=None):
    async def handle(reader, writer):
        try:
            while await reader.read(_CHUNK):
                pass
        except OSError:
            pass
        writer.close()
        await writer.wait_closed()

    return handle


def chargen(net=None):
    """RFC 864: rotating 72-character lines until the client goes away."""
    chars = bytes(range(32, 127))

    async def handle(reader, writer):
        i = 0
        try:
            while True:
                k = i % len(chars)
                line = (chars + chars)[k:k + 72] + b"\r\n"
                writer.write(line)
                await writer.drain()
                i += 1
        except OSError:
            pass  # the client closed or reset
        writer.close()
        await writer.wait_closed()

    return handle


def http(net=None, linger_ms=2000):
    """A tiny HTTP/1.0 server: '/' says hello, '/stats' shows the stack's counters.

    It reads the request line and headers only, never a body, and ends every response with
    a lingering close: a plain close with the body unread would send an RST that can
    destroy the response before the client reads it (see ANCHORS.md, MicroPython 17072).
    """

    async def handle(reader, writer):
        try:
            line = await reader.readline()
            while True:
                h = await reader.readline()
                if not h or h in (b"\r\n", b"\n"):
                    break
            parts = line.split()
            path = parts[1].decode() if len(parts) > 1 else "/"
            if path == "/stats" and net is not None:
                body = "".join("%s %d\n" % kv for kv in net.stats.items()).encode()
                ctype = "text/plain"
                status = "200 OK"
            elif path == "/":
                body = (b"<html><body><h1>Hello from a TCP/IP stack in Python</h1>"
                        b"<p>This page came over our own TCP.</p></body></html>\n")
                ctype = "text/html"
                status = "200 OK"
            else:
                body = b"not found\n"
                ctype = "text/plain"
                status = "404 Not Found"
            writer.write(("HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n" % (status, ctype, len(body))).encode())
            writer.write(body)
            await writer.drain()
            await writer.lingering_close(linger_ms)
        except OSError:
            writer.close()

    return handle


SERVICES = {"echo": (echo, 7), "discard": (discard, 9), "chargen": (chargen, 19),
            "http": (http, 80)}
