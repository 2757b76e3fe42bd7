# The names of the stack's counters (stats.py), in order: RFC 4022 (TCP-MIB) names, plus
# the stack's own drops and pool events. What each counts is said next to its name.
# SPDX-License-Identifier: MIT
#
# One string, split when used: a tuple of 100 str constants would be 100 str objects on the
# heap when the module loads from a .mpy file (4 KB on a 32-bit board, measured by
# tools/mcu_heap.py); one string is one object, or none from ROMFS or frozen. Even that one
# (1.5 KB) is not kept: stats.py imports this module when a Stats is made or the counters
# are listed, and forgets it again. Each name becomes a qstr anyway, as the attribute
# Stats() sets.

TEXT = (
    # RFC 4022
    "tcpActiveOpens "
    "tcpPassiveOpens "
    "tcpAttemptFails "
    "tcpEstabResets "
    "tcpCurrEstab "
    "tcpInSegs "
    "tcpOutSegs "
    "tcpRetransSegs "
    "tcpInErrs "
    "tcpOutRsts "
    # IPv4 (RFC 4293 names)
    "ipInReceives "
    "ipInHdrErrors "
    "ipInAddrErrors "
    "ipInUnknownProtos "
    "ipReasmReqds "  # fragments: counted and dropped, we do not reassemble
    "ipOutRequests "
    "ipOutNoRoutes "  # off-link destination and no gateway
    "ipInMartians "  # source 0/8, 127/8, multicast, broadcast or our own: dropped
    # ICMP (RFC 4293 names)
    "icmpInMsgs "
    "icmpInErrors "
    "icmpInEchos "
    "icmpInDestUnreachs "
    "icmpOutEchoReps "
    "icmpOutDestUnreachs "  # port unreachable for UDP to a closed port
    "icmpOutRateLimited "  # ... not sent: over the rate limit (10 a second)
    "icmpInBadQuotes "  # errors ignored: malformed quote, no such connection, or a quoted
    #                     sequence number outside SND.UNA..SND.NXT (RFC 5927)
    # UDP (RFC 4113 names, and ours)
    "udpInDatagrams "
    "udpNoPorts "
    "udpInErrors "
    "udpOutDatagrams "
    "udpRcvbufErrors "  # a socket's queue was full: the datagram was dropped
    "udpSocketsExhausted "  # a UDP socket was needed and the pool was empty
    # Ethernet and ARP (ours)
    "ethInDrops "  # not for us, too short, or an unknown type
    "arpInRequests "
    "arpInReplies "
    "arpOutRequests "
    "arpOutReplies "
    "arpQueueDrops "  # a frame waited for ARP and no buffer (or entry) was free
    "arpUnresolved "  # frames dropped because their next hop never answered
    "arpRefused "  # claims not learnt: broadcast/multicast sender MAC, martian sender,
    #                an unsolicited overwrite, or an eviction of an entry in use
    "arpRefusedMac "  # ... of them: sender MAC broadcast, multicast, zero or ours
    "arpRefusedAddr "  # ... sender address martian, or off-link in a packet to us
    "arpRefusedClaim "  # ... an unsolicited reply, or another MAC for a resolved entry
    "arpRefusedFull "  # ... no entry without evicting one in use or the gateway's, or
    #                    too many PENDING already (see arp.py)
    # ours
    "tcpInChecksumErrs "
    "tcpRstsUnreadData "  # RST sent on close with unread data (RFC 1122 4.2.2.13)
    "tcpRstsDataAfterClose "  # RST sent for data arriving after a full close
    "tcpChallengeAcks "
    "tcpChallengeAcksSuppressed "
    "tcpTimeWaitRecycled "  # TIME-WAIT records reused because the table was full
    "tcpTimeWaitRecycledOther "  # ... of them, a record of another peer than the new one
    "tcpTimeWaitReopened "  # new SYN accepted from TIME-WAIT (RFC 1122 4.2.2.13)
    "tcpTimeouts "  # connections dropped after retries ran out
    "tcpFinWait2Timeouts "
    "tcpLingerTimeouts "  # lingering_close() gave up waiting for the peer's FIN
    "tcpKeepaliveDrops "
    "tcpFastRetransmits "
    "tcpPersistProbes "
    "tcpPersistAborts "  # dropped: `retries` zero-window probes went unanswered
    "tcpOrphanTimeouts "  # reset: an orphan's total lifetime (orphan_timeout_ms) ran out
    "tcpSynFloodRecycled "  # an embryonic connection reset to make room for a new SYN
    "tcpCloseWaitRecycled "  # an old CLOSE-WAIT connection reset to make room (pool full)
    "tcpOutOfOrderSegs "
    "tcpOutOfOrderDrops "  # no assembler range free
    "tcpListenDrops "  # SYN dropped: backlog full
    "tcpTcbExhausted "  # a TCB was needed and the pool was empty
    "tcpDropped "  # segments dropped as unacceptable or unexpected
    # mDNS responder (stack/mdns.py, RFC 6762)
    "mdnsInQueries "  # queries asking for our name (A or ANY, class IN or ANY)
    "mdnsInErrors "  # malformed: truncated, bad label or pointer, counts beyond the end
    "mdnsOutResponses "  # answers sent: multicast, unicast (QU) and legacy unicast (6.7)
    "mdnsOutAnnouncements "  # unsolicited responses after getting an address (8.3)
    "mdnsRateLimited "  # multicast answers not sent: the last one went < 1 s ago (6)
    "mdnsConflicts "  # another host answered for our name with another address (9)
    # DNS resolver (stack/dns.py, RFC 1035)
    "dnsOutQueries "  # queries sent, retries included
    "dnsInReplies "  # replies to our question that were well formed
    "dnsInUnmatched "  # dropped: wrong ID, server, port or question (RFC 5452)
    "dnsInMalformed "  # dropped: a length, count, pointer or CNAME chain out of bounds
    "dnsInTruncated "  # TC set: the next server is asked (no DNS over TCP)
    "dnsServerErrors "  # SERVFAIL, REFUSED, ...: the next server is asked
    "dnsNameErrors "  # NXDOMAIN or no A record: the lookup fails
    "dnsTimeouts "  # a query went unanswered for its timeout
    "dnsCacheHits "
    # DHCP client (dhcp.py)
    "dhcpOutDiscovers "
    "dhcpOutRequests "
    "dhcpOutDeclines "  # an offered address was in use (ARP conflict, RFC 5227)
    "dhcpOutReleases "
    "dhcpInOffers "
    "dhcpInAcks "
    "dhcpInNaks "
    "dhcpInErrors "  # malformed replies dropped: header, cookie, options, yiaddr
    "dhcpInIgnored "  # well-formed but not for us now: other xid/chaddr/server, or state
    "dhcpRetransmits "
    "dhcpLeases "  # addresses bound after probing
    "dhcpRenewals "  # leases extended in RENEWING or REBINDING
    "dhcpLeaseExpiries "  # leases that ran out: the address was dropped
    "dhcpConflicts "  # offered addresses found in use by the ARP probe
)
