# Assertion helpers for core tests: the same on CPython and MicroPython (no pytest). MIT licence.


class _Raises:
    # Context-manager form of expect_raises. After the block, `.exception` is what was raised.

    def __init__(self, exc_type):
        self.exc_type = exc_type
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError("expected %s, nothing was raised" % self.exc_type.__name__)
        if not issubclass(exc_type, self.exc_type):
            return False  # a different error: let it propagate with its own traceback
        self.exception = exc
        return True


def expect_raises(exc_type, fn=None, *args, **kwargs):
    """Assert that fn(*args, **kwargs) raises exc_type and return the exception.

    Without fn, return a context manager instead (pytest.raises does not exist on MicroPython):

        with expect_raises(OSError) as r:
            sock.recv(1)
        assert r.exception.errno == ECONNRESET
    """
    if fn is None:
        return _Raises(exc_type)
    with _Raises(exc_type) as r:
        fn(*args, **kwargs)
    return r.exception
