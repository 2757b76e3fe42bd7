# Unmodified MicroPython libraries over our stack (issue 12, "How it must be shown"):
# umqtt.simple and umqtt.robust (../shared/third_party/micropython-lib) against Debian's
# mosquitto, and a microdot app (PyPI, pinned in requirements.txt) answering curl.
# MIT licence. CPython pytest; the board side is host_tests/mqtt_board.py on the MicroPython
# unix port in one namespace, on AF_PACKET over a veth pair with a static address; mosquitto,
# mosquitto_sub/mosquitto_pub and curl run in the other namespace.

import os
import subprocess
import time
from pathlib import Path

import mp
import netns
import pytest
from linux import Agent

LINUX_IP = "10.9.7.1"
OUR_IP = "10.9.7.2"
MQTT_PORT = 1883
HTTP_PORT = 8081
MP_LIB = mp.ROOT.parent / "shared" / "third_party" / "micropython-lib"


def _microdot_dir(tmp_path):
    """A directory holding (a link to) the installed microdot package, unmodified."""
    try:
        import microdot
    except ImportError:
        mp.missing("microdot not installed (pip install -r requirements.txt)")
    d = tmp_path / "mpy-lib"
    d.mkdir()
    os.symlink(Path(microdot.__file__).parent, d / "microdot")
    return d


def _board(ns, vb, extra_path):
    """mqtt_board.py on MicroPython unix, with umqtt and microdot on MICROPYPATH (Agent sets
    its own MICROPYPATH: `env` puts ours in front of the interpreter)."""
    path = os.pathsep.join([".frozen", str(mp.ROOT), str(mp.HOST_TESTS)]
                           + [str(p) for p in extra_path])
    argv = ["env", "MICROPYPATH=" + path, mp.micropython_cmd(),
            str(mp.HOST_TESTS / "mqtt_board.py"), "packet:" + vb, OUR_IP, LINUX_IP]
    return Agent(argv, ns=ns)


def _wait_port(linux, port_no):
    for _ in range(100):
        out = linux.exec(["ss", "-ltn"]).stdout
        if ":%d " % port_no in out:
            return
        time.sleep(0.05)
    raise AssertionError("nothing listening on tcp %d" % port_no)


class Broker:
    def __init__(self, linux, conf_dir):
        self.linux = linux
        self.conf = Path(conf_dir) / "mosquitto.conf"
        self.conf.write_text("listener %d %s\nallow_anonymous true\npersistence false\n"
                             "user root\nlog_type all\nlog_dest file %s\n" % (MQTT_PORT, LINUX_IP, Path(conf_dir) / "log"))
        self.proc = None

    def start(self):
        self.proc = self.linux.run([netns.require_tool("mosquitto"), "-c", str(self.conf)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.linux, MQTT_PORT)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class Sub:
    """mosquitto_sub on the Linux side, subscribed (SUBACK seen) when constructed."""

    def __init__(self, linux, topic, qos, count):
        # stdbuf: line-buffered, so the SUBACK line comes when it happens, not at exit
        self.proc = linux.run(["stdbuf", "-oL", netns.require_tool("mosquitto_sub"), "-h", LINUX_IP, "-t",
                               topic, "-q", str(qos), "-C", str(count), "-W", "15", "-v",
                               "-d"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        self.topic = topic
        lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, "mosquitto_sub ended: %r" % lines
            lines.append(line)
            if "SUBACK" in line:
                return

    def messages(self):
        out, _ = self.proc.communicate(timeout=20)
        self.raw = out
        # -d adds "Client ..." and "Subscribed ..." lines; -v prints "TOPIC MSG"
        return [ln for ln in out.splitlines() if ln.startswith(self.topic + " ")]


def _pub(linux, topic, qos, msg):
    linux.exec([netns.require_tool("mosquitto_pub"), "-h", LINUX_IP, "-t", topic, "-q",
                str(qos), "-m", msg], check=True, timeout=10)


@pytest.fixture
def env(tmp_path):
    netns.require_root()
    netns.require_tool("mosquitto")
    if not (MP_LIB / "umqtt" / "simple.py").exists():
        mp.missing("%s missing" % MP_LIB)
    linux = netns.Netns().open()
    ours = netns.Netns().open()
    board = None
    try:
        va, vb = netns.veth(linux, ours, addr_a=LINUX_IP + "/24")
        broker = Broker(linux, tmp_path)
        broker.start()
        board = _board(ours, vb, [MP_LIB, _microdot_dir(tmp_path)])
        yield linux, broker, board
    finally:
        if board is not None:
            board.close()
        ours.close()
        linux.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_umqtt_simple_both_ways(env, qos):
    linux, broker, board = env
    board.cmd("connect simple board1")
    # board -> broker -> mosquitto_sub
    sub = Sub(linux, "up/%d" % qos, qos, 3)
    for i in range(3):
        board.cmd("pub up/%d %d hello%d" % (qos, qos, i))
    assert sub.messages() == ["up/%d hello%d" % (qos, i) for i in range(3)], sub.raw
    # mosquitto_pub -> broker -> board
    board.cmd("sub down/%d %d" % (qos, qos))
    for i in range(3):
        _pub(linux, "down/%d" % qos, qos, "msg%d" % i)
    assert board.cmd("recv 3", timeout=15) == "ok " + " ".join(
        "down/%d=msg%d" % (qos, i) for i in range(3))
    board.cmd("disconnect")


def test_umqtt_robust_reconnects_after_broker_restart(env):
    linux, broker, board = env
    board.cmd("connect robust board2")
    sub = Sub(linux, "r", 1, 1)
    board.cmd("pub r 1 before")
    assert sub.messages() == ["r before"]
    broker.stop()  # the broker closes our connection
    broker.start()
    # check_msg() reads the broker's FIN (EOF: OSError in umqtt.simple); umqtt.robust
    # connects again. (A QoS 1 publish on the dead connection would not do: robust's
    # wait_msg() reconnects inside simple.publish() and then waits for a PUBACK of a
    # message it never sends again, a umqtt.robust limitation.)
    board.cmd("check", timeout=15)
    assert "board2" in linux.exec(["cat", str(broker.conf.parent / "log")]).stdout.split(
        "starting")[-1], "no reconnection"
    sub = Sub(linux, "r", 1, 1)
    board.cmd("pub r 1 after", timeout=15)
    assert sub.messages() == ["r after"]
    board.cmd("disconnect")


def _curl(linux, path, *extra):
    return linux.exec(["curl", "-sS", "--max-time", "5"] + list(extra)
                      + ["http://%s:%d%s" % (OUR_IP, HTTP_PORT, path)], timeout=10)


def test_microdot_answers_curl(env):
    linux, broker, board = env
    n = 200
    board.proc.stdin.write("serve %d %d\n" % (HTTP_PORT, n))
    board.proc.stdin.flush()
    assert board._line(20) == "SERVING"
    for _ in range(100):  # until the server listens
        got = _curl(linux, "/")
        if got.returncode == 0:
            break
        time.sleep(0.05)
    assert got.stdout == "hello from microdot", got.stderr
    # 200 sequential requests in all, answered one after another on fresh connections
    for i in range(1, n):
        got = _curl(linux, "/n/%d" % i)
        assert got.returncode == 0, (i, got.stderr)
        assert got.stdout.replace(" ", "") == '{"i":%d,"double":%d}' % (i, 2 * i), got.stdout
    assert board._line(20) == "ok served %d" % n
    board.cmd("connect simple board3")  # and the stack is still usable afterwards
