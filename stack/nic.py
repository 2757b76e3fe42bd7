# The Stack as a MicroPython network interface: active, isconnected, status, ipconfig,
# ifconfig, config, with network.LAN / network.WIZNET5K meanings and error messages.
# SPDX-License-Identifier: MIT
#
# The Stack's methods of the same names are thin and call these (DESIGN.md section 8).
# Messages follow MicroPython's extmod/network_lwip.c and network_wiznet5k.c:
# "must query one param", "can't specify pos and kw args", "unexpected key" (ipconfig),
# "unknown config param" (config), "unknown status param", "invalid arguments".
#
# State kept on the Stack: net.nic_up (active or not; a Stack built with a static address
# counts as active until active(False)), net.dhcp (the dhcp.Client once made, or None).

from micropython import const

from . import ipv4

_HOSTNAME_MAX = const(32)  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
_DHCP_WAIT_MS = const(10000)  # ifconfig("dhcp") blocks this long, as MicroPython's does


def _up(net):
    up = getattr(net, "nic_up", None)
    if up is None:  # never set: up if it was built with an address (it already runs)
        up = net.has_address()
        net.nic_up = up
    return up


def _client(net, make):
    c = getattr(net, "dhcp", None)
    if c is None and make:
        from . import dhcp

        c = dhcp.Client(net)
        net.dhcp = c
    return c


def _dhcp_running(net):
    c = _client(net, False)
    return c is not None and c.running()


def _start_dhcp(net):
    c = _client(net, True)
    if c.bound:
        c.renew()
    else:
        c.start()


def _stop_dhcp(net):
    c = _client(net, False)
    if c is not None and c.running():
        c.stop()


def _link_up(net):
    fn = getattr(net.link, "link_up", None)
    return True if fn is None else bool(fn())


def _mdns(net, start):
    try:
        from . import mdns
    except ImportError:  # pragma: no cover - a board without mdns.py
        return
    if start:
        if net.hostname:
            mdns.start(net)
    else:
        mdns.stop(net)


def active(net, *up):
    """active() -> bool; active(True) brings the interface up and, with no address
    configured, starts DHCP (non-blocking); active(False) stops DHCP and mDNS."""
    if not up:
        return _up(net)
    if len(up) > 1:
        raise TypeError("function takes at most 1 positional argument")
    if up[0]:
        if _up(net) and getattr(net, "nic_started", False):
            return None
        net.nic_up = True
        net.nic_started = True
        if not net.has_address() and not _dhcp_running(net):
            _start_dhcp(net)
        _mdns(net, True)
    else:
        _stop_dhcp(net)
        _mdns(net, False)
        net.nic_up = False
        net.nic_started = False
    return None


def isconnected(net):
    """Link up, active, and an IPv4 address (static or leased)."""
    return _up(net) and net.has_address() and _link_up(net)


def status(net, *param):
    """0: link down (or inactive), 1: up without an address, 2: up with an address."""
    if param:
        raise ValueError("unknown status param")
    if not _up(net) or not _link_up(net):
        return 0
    return 2 if net.has_address() else 1


def _mask_text(prefix):
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return ipv4.ntoa(mask >> 16, mask & 0xFFFF)


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


def _gw_text(net):
    gw = net.gateway if net.has_address() else None
    return ipv4.ntoa(*ipv4.halves_of(gw)) if gw else "0.0.0.0"


def _dns_text(net):
    servers = net.dns_servers
    return ipv4.ntoa(*ipv4.halves_of(servers[0])) if servers else "0.0.0.0"


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


def ipconfig(net, *key, **kw):
    """ipconfig('addr4' | 'gw4' | 'dns4' | 'dhcp4' | 'has_dhcp4'), or set with keywords:
    addr4="10.0.0.2/24" or (ip, mask), gw4=, dns4= (one or a list), dhcp4=True/False."""
    if not kw:
        if len(key) != 1:
            raise TypeError("must query one param")
        k = key[0]
        if k == "addr4":
            if not net.has_address():
                return ("0.0.0.0", "0.0.0.0")
            return (ipv4.ntoa(net.ip_hi, net.ip_lo), _mask_text(net.prefix))
        if k == "gw4":
            return _gw_text(net)
        if k == "dns4":
            return _dns_text(net)
        if k == "dhcp4":
            return _dhcp_running(net)
        if k == "has_dhcp4":
            c = _client(net, False)
            return c is not None and c.bound
        raise ValueError("unexpected key")
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


def ifconfig(net, *conf):
    """ifconfig() -> (ip, mask, gw, dns); ifconfig((ip, mask, gw, dns)) sets them statically;
    ifconfig("dhcp") starts DHCP and waits up to 10 s for a lease, as MicroPython does."""
    if not conf:
        ip, mask = ipconfig(net, "addr4")
        return (ip, mask, _gw_text(net), _dns_text(net))
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
    ipconfig(net, addr4=(ip, mask), gw4=gw, dns4=dns)
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


def config(net, *key, **kw):
    """config('mac') -> 6 bytes; config('hostname'); config(hostname='board7')."""
    if not kw:
        if len(key) != 1:
            raise TypeError("must query one param")
        k = key[0]
        if k == "mac":
            return bytes(net.mac) if net.mac else b"\x00" * 6
        if k == "hostname":
            return net.hostname
        raise ValueError("unknown config param")
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
