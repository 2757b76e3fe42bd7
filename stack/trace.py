# Segment traces in the RFC 793 / RFC 9293 figure format, for demos, REPL debugging, logs.
# SPDX-License-Identifier: MIT
#
#         TCP A                                                        TCP B
#      1. ESTABLISHED                                                  ESTABLISHED
#      2. (Close)
#      3. FIN-WAIT-1  --> <SEQ=100><ACK=300><CTL=FIN,ACK>          --> CLOSE-WAIT
#      4. FIN-WAIT-2  <-- <SEQ=300><ACK=101><CTL=ACK>              <-- CLOSE-WAIT
#
# Sequence numbers are shown relative to each side's ISN plus a small base (100 for the
# left side, 300 for the right, as the RFC figures do), so a reader can follow them.

from . import ipv4

_CTL = ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x10, "ACK"))


def _get32(buf, i):
    return (buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]


class Figure:
    """Numbered rows of a two-endpoint exchange. `out` takes one line of text."""

    def __init__(self, left="TCP A", right="TCP B", out=print, left_base=100,
                 right_base=300):
        self.out = out
        self.row = 0
        self.isn = {}  # (ip halves, port) -> ISN seen in its SYN
        self.bases = (left_base, right_base)
        self.left_ip = None
        self.out("        %-67s%s" % (left, right))

    def _key(self, buf, ip, src):
        a = ip + (12 if src else 16)
        t = ip + (buf[ip] & 0x0F) * 4
        p = t + (0 if src else 2)
        return ((buf[a] << 8 | buf[a + 1]), (buf[a + 2] << 8 | buf[a + 3]),
                (buf[p] << 8) | buf[p + 1])

    def describe(self, buf, ip, n, left_to_right=True):
        """'<SEQ=100><ACK=300><CTL=SYN,ACK>' (+ '<DATA=5>') for the packet at buf[ip:].

        left_to_right says which side sent it (numbering: the left side counts from 100)."""
        t = ip + (buf[ip] & 0x0F) * 4
        flags = buf[t + 13]
        src = self._key(buf, ip, True)
        dst = self._key(buf, ip, False)
        sq = _get32(buf, t + 4)
        ack = _get32(buf, t + 8)
        if flags & 0x02 and not flags & 0x10:
            self.isn = {}  # a new connection: forget the old numbering
        if flags & 0x02:
            self.isn[src] = sq
        if self.left_ip is None:
            self.left_ip = src if left_to_right else dst
        side = 0 if src == self.left_ip else 1
        text = "<SEQ=%d>" % self._rel(src, sq, self.bases[side])
        if flags & 0x10:
            text += "<ACK=%d>" % self._rel(dst, ack, self.bases[1 - side])
        text += "<CTL=%s>" % ",".join(name for bit, name in _CTL if flags & bit)
        dlen = ipv4.total_len(buf, ip) - (t - ip) - (buf[t + 12] >> 4) * 4
        if dlen:
            text += "<DATA=%d>" % dlen
        return text

    def _rel(self, key, value, base):
        isn = self.isn.get(key)
        if isn is None:
            return value
        return (value - isn + base) & 0xFFFFFFFF

    def states(self, left, right):
        self.row += 1
        self.out(("    %2d. %-67s%s" % (self.row, left, right)).rstrip())

    def note(self, left="", right=""):
        """An application event, as the RFC's '(Close)' lines."""
        self.states(left, right)

    def segment(self, buf, ip, n, left_state, right_state, left_to_right):
        """One segment on its way: the sender's state when sent, the receiver's after."""
        self.row += 1
        arrow = "-->" if left_to_right else "<--"
        self.out("    %2d. %-11s %s %-46s %s %s" % (self.row, left_state, arrow,
                                                   self.describe(buf, ip, n, left_to_right),
                                                   arrow,
                                                   right_state))


def state_of(net, rip_hi, rip_lo, lport, rport):
    """The state of one connection of net by its 4-tuple: a TCB's, TIME-WAIT, or CLOSED."""
    for tcb in net.tcbs:
        if (tcb.in_use and tcb.lport == lport and tcb.rport == rport and tcb.rip_hi == rip_hi
                and tcb.rip_lo == rip_lo and tcb.state != 0):
            return tcb.state_name()
    if net.tw.find(rip_hi, rip_lo, lport, rport) >= 0:
        return "TIME-WAIT"
    return "CLOSED"


def attach(net, out=print, peer="peer", us="this stack"):
    """Print every segment of net as a figure row: the peer on the left, our state on the
    right (after an incoming segment was processed, as an outgoing one leaves). Replies
    sent while a segment is processed are shown after it, in wire order.
    Returns the Figure; detach with net.tracer = None."""
    fig = Figure(peer, us, out)
    held = []  # our segments sent while an incoming one was being processed

    def tuple_state(buf, ip, incoming):
        t = ip + (buf[ip] & 0x0F) * 4
        a = ip + (12 if incoming else 16)
        sport = (buf[t] << 8) | buf[t + 1]
        dport = (buf[t + 2] << 8) | buf[t + 3]
        return state_of(net, (buf[a] << 8) | buf[a + 1], (buf[a + 2] << 8) | buf[a + 3],
                        dport if incoming else sport, sport if incoming else dport)

    def hook(direction, buf, ip, n):
        if direction == "in":
            fig.segment(buf, ip, n, "", tuple_state(buf, ip, True), True)
            for pkt, state in held:
                fig.segment(pkt, 0, len(pkt), "", state, False)
            del held[:]
            return
        state = tuple_state(buf, ip, False)
        if net.in_segment:
            held.append((bytes(buf[ip:ip + n]), state))  # debugging aid: copies are fine
        else:
            fig.segment(buf, ip, n, "", state, False)

    net.tracer = hook
    return fig
