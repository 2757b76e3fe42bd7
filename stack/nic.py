# The Stack as a MicroPython network interface: active, isconnected, status, ipconfig,
# ifconfig, config, with network.LAN / network.WIZNET5K meanings and error messages.
# SPDX-License-Identifier: MIT
#
# The Stack's methods of the same names are thin and call these (DESIGN.md section 8); the
# setting forms (ipconfig(addr4=...), ifconfig((...)), config(hostname=)) are in nic_set.py.
# Messages follow MicroPython's extmod/network_lwip.c and network_wiznet5k.c:
# "must query one param", "can't specify pos and kw args", "unexpected key" (ipconfig),
# "unknown config param" (config), "unknown status param", "invalid arguments".
#
# State kept on the Stack: net.nic_up (active or not; a Stack built with a static address
# counts as active until active(False)), net.dhcp (the dhcp.Client once made, or None).

from . import ipv4


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


def _gw_text(net):
    gw = net.gateway if net.has_address() else None
    return ipv4.ntoa(*ipv4.halves_of(gw)) if gw else "0.0.0.0"


def _dns_text(net):
    servers = net.dns_servers
    return ipv4.ntoa(*ipv4.halves_of(servers[0])) if servers else "0.0.0.0"


def ipconfig(net, *key, **kw):
    """ipconfig('addr4' | 'gw4' | 'dns4' | 'dhcp4' | 'has_dhcp4'), or set with keywords:
    addr4="10.0.0.2/24" or (ip, mask), gw4=, dns4= (one or a list), dhcp4=True/False."""
    if kw:
        from . import nic_set  # setting: loaded when first used

        return nic_set.ipconfig(net, key, kw)
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


def ifconfig(net, *conf):
    """ifconfig() -> (ip, mask, gw, dns); ifconfig((ip, mask, gw, dns)) sets them statically;
    ifconfig("dhcp") starts DHCP and waits up to 10 s for a lease, as MicroPython does."""
    if conf:
        from . import nic_set

        return nic_set.ifconfig(net, conf)
    ip, mask = ipconfig(net, "addr4")
    return (ip, mask, _gw_text(net), _dns_text(net))


def config(net, *key, **kw):
    """config('mac') -> 6 bytes; config('hostname'); config(hostname='board7')."""
    if kw:
        from . import nic_set

        return nic_set.config(net, key, kw)
    if len(key) != 1:
        raise TypeError("must query one param")
    k = key[0]
    if k == "mac":
        return bytes(net.mac) if net.mac else b"\x00" * 6
    if k == "hostname":
        return net.hostname
    raise ValueError("unknown config param")
