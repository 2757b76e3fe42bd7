# The emulated board's C glue (tools/emuboard.py builds it into ports/qemu as a user C module).
# MIT licence. See emuboard.c.
EMUBOARD_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(EMUBOARD_MOD_DIR)/emuboard.c
# VM hooks (every file): poll the UART for Ctrl-C while Python runs.
CFLAGS_USERMOD += -include $(EMUBOARD_MOD_DIR)/hooks.h
# Boot like a board: mount the RAM disk, run boot.py and main.py after each (soft) reset; keep
# what the UART received while code ran for the REPL to read.
LDFLAGS_USERMOD += --wrap=mp_init --wrap=mp_hal_stdin_rx_chr --wrap=mp_hal_stdio_poll
