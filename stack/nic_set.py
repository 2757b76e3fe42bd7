# Changing the network interface's configuration: ipconfig(addr4=, gw4=, dns4=, dhcp4=),
# ifconfig((ip, mask, gw, dns)) and ifconfig("dhcp"), config(hostname=).
# SPDX-License-Identifier: MIT
#
# nic.py answers the queries and calls these for the setting forms. A module of its own:
# a board configured once at start-up (Stack(ip=...) or DHCP) never loads it, and from .mpy
# files every module loaded keeps its bytecode on the heap. Errors and their messages are
# MicroPython's, as nic.py says.

from micropython import const

from . import ipv4
from .nic import _start_dhcp, _stop_dhcp

_HOSTNAME_MAX = const(32)  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
_DHCP_WAIT_MS = const(10000)  # ifconfig("dhcp") blocks this long, as MicroPython's does


def _aton(text):
    try:
        return ipv4.aton(text)
    except (ValueError, AttributeError, TypeError):
        raise ValueError("invalid arguments")


def _prefix_of(mask_text):
    m = _aton(mask_text)
    p = 0
    zeros = False
    for b in m:
        for bit in range(7, -1, -1):
            if b >> bit & 1:
                if zeros:
                    raise ValueError("invalid arguments")
                p += 1
            else:
                zeros = True
    return p


def _addr4(net, value):
    # "10.0.0.2/24", "10.0.0.2" (keeps the prefix), (ip, mask), or None (no address).
    if value is None:
        return None, 0
    if isinstance(value, str):
        if "/" in value:
            ip, p = value.split("/", 1)
            if not p.isdigit() or int(p) > 32:
                raise ValueError("invalid arguments")
            return _aton(ip), int(p)
        return _aton(value), net.prefix
    try:
        ip, mask = value
    except (TypeError, ValueError):
        raise ValueError("invalid arguments")
    return _aton(ip), _prefix_of(mask)


def ipconfig(net, key, kw):
    """nic.ipconfig(**kw): addr4="10.0.0.2/24" or (ip, mask), gw4=, dns4= (one or a list),
    dhcp4=True/False."""
    if key:
        raise TypeError("can't specify pos and kw args")
    for k in kw:
        if k not in ("addr4", "gw4", "dns4", "dhcp4"):
            raise ValueError("unexpected key")
    # Check everything before changing anything.
    addr = gw = dns = None
    if "addr4" in kw:
        addr = _addr4(net, kw["addr4"])
    if "gw4" in kw:
        gw = _aton(kw["gw4"])
    if "dns4" in kw:
        v = kw["dns4"]
        dns = [_aton(s) for s in ((v,) if isinstance(v, str) else v)][:3]
    if "dhcp4" in kw and not kw["dhcp4"]:
        _stop_dhcp(net)
    if addr is not None:
        # A static address: DHCP stops (its lease is released), the address is ours.
        if gw is None and net.has_address():
            gw = net.gateway  # the gateway stays, as lwIP keeps it
        _stop_dhcp(net)
        ip, prefix = addr
        if ip is None:
            if net.has_address():
                net.clear_address()
        else:
            net.set_address(ip, prefix, gw)
    elif gw is not None:
        if net.has_address():
            net.set_address(net.ip, net.prefix, gw)
        else:
            net.gateway = gw  # taken up when an address comes (set_address keeps it)
    if dns is not None:
        net.dns_servers = dns
    if kw.get("dhcp4"):
        _start_dhcp(net)
    return None


def ifconfig(net, conf):
    """nic.ifconfig(conf): (ip, mask, gw, dns) sets them statically; "dhcp" starts DHCP and
    waits up to 10 s for a lease, as MicroPython does."""
    if len(conf) > 1:
        raise TypeError("function takes at most 2 positional arguments")
    v = conf[0]
    if isinstance(v, str):
        if v != "dhcp":
            raise ValueError("invalid arguments")
        return _wait_dhcp(net)
    try:
        ip, mask, gw, dns = v
    except (TypeError, ValueError):
        raise ValueError("invalid arguments")
    ipconfig(net, (), {"addr4": (ip, mask), "gw4": gw, "dns4": dns})
    return None


def _wait_dhcp(net):
    from . import port

    net.nic_up = True
    _start_dhcp(net)
    start = net.clock()
    while not net.has_address():
        left = _DHCP_WAIT_MS - port.ticks_diff(net.clock(), start)
        if left <= 0:
            raise OSError("timeout waiting for DHCP to get IP address")
        ms = net.poll()
        if not net.has_address():
            net.wait(left if ms is None or ms > left else ms)
    return None


def config(net, key, kw):
    """nic.config(hostname='board7')."""
    if key:
        raise TypeError("can't specify pos and kw args")
    for k in kw:
        if k != "hostname":
            raise ValueError("unknown config param")
    name = kw["hostname"]
    if not isinstance(name, str):
        raise TypeError("can't convert %s to str" % type(name).__name__)
    if len(name) > _HOSTNAME_MAX:
        raise ValueError()  # as network.hostname(): no message
    net.hostname = name
    return None
