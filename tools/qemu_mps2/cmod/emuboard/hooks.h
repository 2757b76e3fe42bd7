// Included into every C file of the emulated board's firmware (micropython.mk). MIT licence.
// Every 64 branches/returns of bytecode, look at the UART: a Ctrl-C there interrupts the
// running code (KeyboardInterrupt), as a board's UART interrupt does. The port itself reads
// the UART only when it waits for input, so main.py could not otherwise be stopped.
#ifndef EMUBOARD_HOOKS_H
#define EMUBOARD_HOOKS_H
void emuboard_poll(void);
#define MICROPY_VM_HOOK_COUNT (64)
#define MICROPY_VM_HOOK_INIT static unsigned int vm_hook_divisor = MICROPY_VM_HOOK_COUNT;
#define MICROPY_VM_HOOK_POLL if (--vm_hook_divisor == 0) { \
        vm_hook_divisor = MICROPY_VM_HOOK_COUNT; \
        emuboard_poll(); \
}
#define MICROPY_VM_HOOK_LOOP MICROPY_VM_HOOK_POLL
#define MICROPY_VM_HOOK_RETURN MICROPY_VM_HOOK_POLL
#endif
