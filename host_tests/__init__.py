# Core test modules: run by pytest on CPython, and by run_tests.py on MicroPython (unix and
# WebAssembly). MIT licence.
#
# MicroPython cannot discover files, so every core test module is listed here by name.
# To add one: write host_tests/test_<topic>.py with plain `test_*` functions and/or
# `Test*` classes (no __init__; use `setup`/`teardown`), import nothing from pytest,
# then append "test_<topic>" below. test_micropython.py then runs it on both ports.
# CPython-only tests (they may use pytest, subprocess, ...) are simply not listed.

MODULES = [
    "test_runner_selfcheck",
    "test_units",
    "test_tcp_open",
    "test_tcp_data",
    "test_tcp_close",
    "test_tcp_hostile",
    "test_udp",
    "test_blocking",
    "test_ether",
    "test_aio",
    "test_debug",
    "test_lan_hostile",
    "test_fuzz",
    "test_mdns",
    "test_dns",
    "test_dhcp",
    "test_streams",
    "test_lan9118",
]
