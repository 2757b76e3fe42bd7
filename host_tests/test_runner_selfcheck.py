# Proves the core-test runner itself works on every interpreter. MIT licence.
from testing import expect_raises


def test_arithmetic():
    assert 2 + 2 == 4
    # 32-bit sequence numbers must wrap the same way everywhere, even where 2**32 is a big int.
    assert (0xFFFFFFFF + 2) & 0xFFFFFFFF == 1


def test_expect_raises_returns_exception():
    e = expect_raises(ZeroDivisionError, lambda: 1 // 0)
    assert isinstance(e, ZeroDivisionError)


def test_expect_raises_context_manager():
    with expect_raises(OSError) as r:
        raise OSError(104)
    assert r.exception.args[0] == 104


def test_expect_raises_fails_when_nothing_raised():
    try:
        expect_raises(ValueError, lambda: None)
    except AssertionError:
        return
    raise Exception("expect_raises accepted a call that raised nothing")


def test_expect_raises_lets_other_errors_through():
    e = expect_raises(KeyError, expect_raises, ValueError, lambda: {}["x"])
    assert isinstance(e, KeyError)


def test_const_import():
    # Core modules all say this; on CPython, importing stack is what makes it work.
    import stack  # noqa: F401
    from micropython import const

    assert const(7) == 7


class TestSetup:
    # Test classes must not define __init__ (pytest would not collect them): use setup().

    def setup(self):
        self.calls = ["setup"]

    def test_a_setup_ran_first(self):
        self.calls.append("a")
        assert self.calls == ["setup", "a"]

    def test_b_fresh_instance(self):
        # Runs after test_a (both runners order by name here) and must not see its "a".
        self.calls.append("b")
        assert self.calls == ["setup", "b"]
