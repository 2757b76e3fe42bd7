# Memory on the 32-bit WebAssembly MicroPython: bytes allocated per segment in a steady bulk
# transfer must not grow with payload size; TIME-WAIT stays compact. MIT licence.

import mp


def _figures(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def test_alloc_per_segment_does_not_grow_with_payload_wasm32():
    f = _figures(mp.run_wasm("host_tests/mem_per_segment.py", timeout=300))
    small, big = f["alloc_bytes_per_segment_100"], f["alloc_bytes_per_segment_1400"]
    print(f)
    # 14x the payload may not cost more heap: the payload is copied, never allocated.
    assert big <= small + 16, f
    # And the per-segment cost is bounded (it is headers, views and call frames).
    assert small < 1024, f
    # A TIME-WAIT record is a fraction of a TCB (DESIGN.md 3).
    assert f["time_wait_bytes_per_slot"] <= 64, f
    assert f["time_wait_bytes_per_slot"] * 8 < f["tcb_bytes_without_rings"], f
