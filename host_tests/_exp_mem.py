import gc
from stack.ringbuf import RingBuffer
from stack.assembler import Assembler
import array
def m(f, n=16):
    gc.collect(); a = gc.mem_alloc()
    keep = [f() for _ in range(n)]
    gc.collect(); b = gc.mem_alloc()
    return (b - a - 0) // n
class O:
    pass
def obj(k):
    def f():
        o = O()
        for i in range(k):
            setattr(o, "a%d" % i, i)
        return o
    return f
for k in (0, 4, 8, 12, 16, 24, 32, 54):
    print("obj", k, m(obj(k)))
print("ring1024", m(lambda: RingBuffer(1024)))
print("bytearray1024", m(lambda: bytearray(1024)))
print("asm4", m(lambda: Assembler(4)))
print("arr i 64", m(lambda: array.array('i', bytes(256))))
print("arr i 40", m(lambda: array.array('i', bytes(160))))
print("list4", m(lambda: [0]*4))
