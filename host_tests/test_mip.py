# Installing the stack with mip, as MicroPython users install libraries (issue 13).
# CPython drives; the installs and smoke tests run on the MicroPython unix port. MIT licence.
#
# The package files are mip-<name>.json at the repo root, written by tools/mip_packages.py
# from one table. A local HTTP server (127.0.0.1, a free port, stopped at the end) serves the
# repo as GitHub would; `micropython -m mip install --target DIR URL` installs each package
# into an empty folder, and host_tests/mip_smoke.py, copied out of the repo, then runs on
# the unix port with only that folder (and the port's frozen modules) on its path.
# mpremote's mip reads the same files (from the server and from a local path).
# No traffic leaves 127.0.0.1.

import importlib
import os
import select
import shutil
import subprocess
import sys
import time

import mp
import pytest

TOOLS = mp.ROOT / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
mip_packages = importlib.import_module("mip_packages")

NAMES = [p[0] for p in mip_packages.PACKAGES]
_TIMEOUT_S = 60


def _files(name):
    for n, _, files, _ in mip_packages.PACKAGES:
        if n == name:
            return ["stack/" + f for f in files]
    raise KeyError(name)


def _deps(name):
    return [p[3] for p in mip_packages.PACKAGES if p[0] == name][0]


class Server:
    """python3 -m http.server on 127.0.0.1 and a free port, serving folder."""

    def __init__(self, folder):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
             "--directory", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = None
        deadline = time.monotonic() + 10
        line = ""
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                if select.select([self.proc.stdout], [], [], 0.2)[0]:
                    line = self.proc.stdout.readline()
                    break
            # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
            words = line.split()
            assert "port" in words, "http.server did not start: %r" % line
            self.port = int(words[words.index("port") + 1])
        except BaseException:
            self.stop()
            raise
        self.url = "http://127.0.0.1:%d/" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def server():
    s = Server(mp.ROOT)
    try:
        yield s
    finally:
        s.stop()


def _mip_install(target, *urls):
    """micropython -m mip install --target target urls...; fails the test on any error."""
    proc = subprocess.run(
        [mp.micropython_cmd(), "-m", "mip", "install", "--target", str(target), *urls],
        env=dict(os.environ, MICROPYPATH=".frozen"), capture_output=True, text=True,
        timeout=_TIMEOUT_S, cwd=str(target.parent))
    out = proc.stdout + proc.stderr
    # mip's command line exits 0 even when a package or file is missing: read what it says.
    assert proc.returncode == 0, out
    assert out.count("Done") == len(urls), out
    for bad in ("not found", "Error", "partially", "Traceback"):
        assert bad not in out, out
    return out


def _installed(target):
    out = []
    for dirpath, _, filenames in os.walk(target):
        out += [os.path.relpath(os.path.join(dirpath, f), target) for f in filenames]
    return sorted(out)


def _check_landed(target, names):
    want = sorted({f for n in names for f in _files(n)})
    assert _installed(target) == want
    for f in want:
        with open(os.path.join(target, f), "rb") as a, open(mp.ROOT / f, "rb") as b:
            assert a.read() == b.read(), "%s differs from the repo's" % f


def _smoke(tmp_path, target, *names):
    """Run mip_smoke.py from a folder outside the repo with only target on the path."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    shutil.copy(mp.HOST_TESTS / "mip_smoke.py", app / "mip_smoke.py")
    return subprocess.run(
        [mp.micropython_cmd(), "mip_smoke.py", *names], cwd=str(app),
        env=dict(os.environ, MICROPYPATH=".frozen" + os.pathsep + str(target)),
        capture_output=True, text=True, timeout=_TIMEOUT_S)


def _assert_smoke(tmp_path, target, *names):
    proc = _smoke(tmp_path, target, *names)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for n in names:
        assert "SMOKE %s OK" % n in proc.stdout, out


def test_every_stack_file_in_one_package_and_json_fresh():
    assert mip_packages.problems() == []
    for fname, text in mip_packages.render().items():
        path = mp.ROOT / fname
        assert path.exists(), "%s missing: run python3 tools/mip_packages.py" % fname
        assert path.read_text() == text, "%s stale: run python3 tools/mip_packages.py" % fname
    # Host-only modules stay out, as tools/mpy.py leaves them off boards.
    mpy = importlib.import_module("mpy")
    for rel in mpy.HOST_ONLY:
        assert rel[len("stack/"):] in mip_packages.LEFT_OUT, rel
    assert sorted(_deps(n) for n in NAMES if n != "core") == [("core",)] * (len(NAMES) - 1)


@pytest.mark.parametrize("name", NAMES)
def test_mip_install_then_smoke(server, tmp_path, name):
    target = tmp_path / "lib"
    # The committed files carry no "deps" (see tools/mip_packages.py): core, then the extra.
    urls = [server.url + mip_packages.json_name(n) for n in _deps(name) + (name,)]
    _mip_install(target, *urls)
    _check_landed(target, ("core", name))
    _assert_smoke(tmp_path, target, name)


def test_all_packages_in_one_target(server, tmp_path):
    target = tmp_path / "lib"
    _mip_install(target, *[server.url + mip_packages.json_name(n) for n in NAMES])
    _check_landed(target, NAMES)
    for rel in mip_packages.LEFT_OUT:
        assert not (target / "stack" / rel).exists()
    _assert_smoke(tmp_path, target, *NAMES)


def test_deps_pull_in_the_core(tmp_path):
    """A copy published with --deps-base: installing an extra alone brings the core."""
    www = tmp_path / "www"
    www.mkdir()
    os.symlink(mp.ROOT / "stack", www / "stack")
    s = Server(www)
    try:
        proc = subprocess.run(
            [sys.executable, str(TOOLS / "mip_packages.py"), "--out", str(www),
             "--deps-base", s.url], capture_output=True, text=True, timeout=_TIMEOUT_S)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        target = tmp_path / "lib"
        out = _mip_install(target, s.url + mip_packages.json_name("aio"))
        assert s.url + mip_packages.json_name("core") in out
        _check_landed(target, ("core", "aio"))
        _assert_smoke(tmp_path, target, "aio")
    finally:
        s.stop()


_MPREMOTE = r"""
import os, sys
from mpremote import mip

class Folder:
    # The transport calls mpremote's mip makes, on a local folder instead of a board.
    def __init__(self, root):
        self.root = root
    def fs_exists(self, p):
        return os.path.exists(os.path.join(self.root, p))
    def fs_mkdir(self, p):
        os.mkdir(os.path.join(self.root, p))
    def fs_writefile(self, p, data, progress_callback=None):
        with open(os.path.join(self.root, p), "wb") as f:
            f.write(data)
    def fs_hashfile(self, p, algo):
        raise FileNotFoundError(p)

root, package = sys.argv[1], sys.argv[2]
mip._install_package(Folder(root), package, mip._PACKAGE_INDEX, "lib", None, False)
"""


@pytest.mark.parametrize("where", ["http", "path"])
def test_mpremote_mip_reads_the_same_files(server, tmp_path, where):
    """mpremote mip install, from the server and from a clone (its .json path)."""
    python = mp.ROOT / ".venv" / "bin" / "python"
    if not os.access(python, os.X_OK):
        mp.missing(".venv/bin/python not found (run `make .venv`)")
    check = subprocess.run([str(python), "-c", "import mpremote.mip"], capture_output=True)
    if check.returncode:
        mp.missing("mpremote not installed in .venv (run `make .venv`)")
    board = tmp_path / "board"
    board.mkdir()
    for n in NAMES:
        if where == "http":
            package, cwd = server.url + mip_packages.json_name(n), tmp_path
        else:  # as `cd clone && mpremote mip install ./mip-core.json`
            package, cwd = "./" + mip_packages.json_name(n), mp.ROOT
        proc = subprocess.run([str(python), "-c", _MPREMOTE, str(board), package],
                              cwd=str(cwd), capture_output=True, text=True,
                              timeout=_TIMEOUT_S)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_landed(board / "lib", NAMES)


def test_smoke_fails_without_any_one_file(tmp_path):
    """The smoke tests can fail: with any one file of a package missing, its smoke fails."""
    passed = []
    for name in NAMES:
        for missing in _files(name):
            target = tmp_path / ("lib-%s-%s" % (name, missing.replace("/", "_")))
            for f in _files("core") + (_files(name) if name != "core" else []):
                if f != missing:
                    os.makedirs(target / os.path.dirname(f), exist_ok=True)
                    shutil.copy(mp.ROOT / f, target / f)
            proc = _smoke(tmp_path, target, name)
            if proc.returncode == 0:
                passed.append("%s without %s" % (name, missing))
            shutil.rmtree(target)
    assert passed == [], "smoke passed with a file missing: " + ", ".join(passed)
