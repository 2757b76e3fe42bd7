# Frozen into the emulated board's firmware; runs first after every (soft) reset, before
# boot.py and main.py (tools/qemu_mps2/cmod/emuboard/emuboard.c). MIT licence.
#
# The board's "flash": a littlefs on 2 MiB of the MPS2's spare SRAM at 0x20000000 (outside
# the firmware and its heap, which live in the 4 MiB at 0x0). Its contents survive soft
# resets, as a flash filesystem does, but not a restart of QEMU: a fresh board gets an empty
# filesystem, then `make deploy` (mpremote fs cp) fills it. A ROMFS image loaded by QEMU at
# 0x21000000 is mounted at /rom by MicroPython itself, /rom/lib on sys.path.
import sys

import uctypes
import vfs

_ADDR = 0x20000000
_SIZE = 2 * 1024 * 1024
_BLOCK = 4096


class RAMBlockDev:
    """A block device over RAM, for vfs.VfsLfs2 (extended interface: offsets)."""

    def __init__(self, addr, size, block=_BLOCK):
        self.mem = memoryview(uctypes.bytearray_at(addr, size))
        self.block = block
        self.count = size // block

    def readblocks(self, n, buf, off=0):
        a = n * self.block + off
        buf[:] = self.mem[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * self.block + (off or 0)
        self.mem[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return self.block
        if op == 6:  # erase: nothing to do in RAM
            return 0
        return None


def _mount():
    bdev = RAMBlockDev(_ADDR, _SIZE)
    try:
        vfs.mount(vfs.VfsLfs2(bdev), "/")
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)  # a fresh board (QEMU just started): an empty filesystem
        vfs.mount(vfs.VfsLfs2(bdev), "/")
    import os

    os.chdir("/")
    if "/lib" not in sys.path:
        sys.path.append("/lib")


try:
    _mount()
except Exception as e:  # a board without its flash still boots to the REPL
    sys.print_exception(e)
del _mount
