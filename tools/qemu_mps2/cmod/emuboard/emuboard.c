// The emulated board's C glue for MicroPython's ports/qemu (mps2-an385). MIT licence.
//
// ports/qemu is a test port: after a reset it goes straight to the REPL, and it reads the
// UART only while it waits for input. A board does more, and the project's tools expect it:
// - after every reset (and soft reset) run the frozen _boot.py (it mounts the RAM disk at /),
//   then boot.py, then main.py when the friendly REPL is next (not the raw REPL: mpremote's
//   soft reset), as ports/rp2 and ports/stm32 do. mp_init() is wrapped (ld --wrap) for that;
// - Ctrl-C interrupts running code: the VM hook (hooks.h) moves what the UART received into
//   a ring, raising KeyboardInterrupt for the interrupt character; the REPL's reads take the
//   ring first (mp_hal_stdin_rx_chr and mp_hal_stdio_poll wrapped), so no byte is lost.
// Nothing in the port's own sources is changed.

#include "py/runtime.h"
#include "py/mphal.h"
#include "py/stream.h"
#include "shared/runtime/pyexec.h"
#include "shared/runtime/interrupt_char.h"
#include "uart.h"

void __real_mp_init(void);
int __real_mp_hal_stdin_rx_chr(void);
uintptr_t __real_mp_hal_stdio_poll(uintptr_t poll_flags);

#define RING_SIZE (512)
static uint8_t ring[RING_SIZE];
static volatile unsigned int ring_head, ring_tail;

void emuboard_poll(void) {
    for (int k = 0; k < 32; k++) {  // bounded: a burst is picked up over a few hooks
        if (ring_head - ring_tail >= RING_SIZE) {
            return;  // full: leave the rest in the UART until the REPL reads
        }
        int c = uart_rx_chr();
        if (c == UART_RX_NO_CHAR) {
            return;
        }
        if (c == mp_interrupt_char) {
            mp_sched_keyboard_interrupt();
            continue;
        }
        ring[ring_head % RING_SIZE] = c;
        ring_head++;
    }
}

int __wrap_mp_hal_stdin_rx_chr(void) {
    if (ring_head != ring_tail) {
        int c = ring[ring_tail % RING_SIZE];
        ring_tail++;
        return c;
    }
    return __real_mp_hal_stdin_rx_chr();
}

uintptr_t __wrap_mp_hal_stdio_poll(uintptr_t poll_flags) {
    if ((poll_flags & MP_STREAM_POLL_RD) && ring_head != ring_tail) {
        return MP_STREAM_POLL_RD;
    }
    return __real_mp_hal_stdio_poll(poll_flags);
}

void __wrap_mp_init(void) {
    __real_mp_init();
    pyexec_frozen_module("_boot.py", false);
    pyexec_file_if_exists("boot.py");
    if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL) {
        pyexec_file_if_exists("main.py");
    }
}
