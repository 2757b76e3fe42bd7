# CPU time of the stack alone per segment, on an in-memory link (no syscalls, no host link).
# MIT licence. For the MicroPython unix port (time.ticks_us); prints "key value" lines.
#
#   micropython host_tests/cpu_per_segment.py      (MICROPYPATH with the repo and host_tests)
#
# One round is: A sends one 1400-byte segment, B takes it in and ACKs it, B's application
# reads it, A takes the ACK in. Wall time on an otherwise idle interpreter = CPU time.

import time

import mem_per_segment as m


def main(rounds=3000):
    na, nb, c, s, clock = m._pair()
    data = memoryview(bytearray(1400))
    sink = bytearray(1400)

    def one():
        c.send(data)
        nb.poll()
        s.recv_into(sink)
        clock[0] += 1
        na.poll()

    for _ in range(100):
        one()
    tt = [0, 0, 0]
    for _ in range(rounds):
        a = time.ticks_us()
        c.send(data)
        b = time.ticks_us()
        nb.poll()
        s.recv_into(sink)
        d = time.ticks_us()
        clock[0] += 1
        na.poll()
        e = time.ticks_us()
        tt[0] += time.ticks_diff(b, a)
        tt[1] += time.ticks_diff(d, b)
        tt[2] += time.ticks_diff(e, d)
    print("cpu_us_send_data_segment %.1f" % (tt[0] / rounds))
    print("cpu_us_receive_data_segment_and_ack_it %.1f" % (tt[1] / rounds))
    print("cpu_us_receive_ack %.1f" % (tt[2] / rounds))


main()
