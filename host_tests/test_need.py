# tools/need.sh, which `make test` runs first: install what is missing, or say so in one line.
# CPython only. MIT licence.
#
# A missing tool is simulated with a PATH of symlinks to every command of the usual PATH except
# the ones the test takes away; apt-get, where the test needs it, is a fake that records its
# arguments, so nothing is ever installed.
import os
import shutil
import subprocess
import tempfile

import mp
import netns
import pytest

NEED = mp.ROOT / "tools" / "need.sh"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def bin_dir():
    # Not under tmp_path: `nobody` must be able to read it (pytest makes that 0700).
    d = tempfile.mkdtemp(prefix="need-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def _path_without(bin_dir, *gone):
    for p in SYSTEM_PATH.split(":"):
        if not os.path.isdir(p):
            continue
        for name in os.listdir(p):
            link = os.path.join(bin_dir, name)
            if name not in gone and not os.path.lexists(link):
                os.symlink(os.path.join(p, name), link)
    return bin_dir


def _run(argv, path, **kw):
    return subprocess.run(argv, env={"PATH": path}, cwd=mp.ROOT, capture_output=True,
                          text=True, timeout=60, **kw)


def _one_line(proc):
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_nothing_missing_is_silent():
    proc = _run([str(NEED)], SYSTEM_PATH)
    if proc.returncode != 0:
        mp.missing("this machine lacks what make test needs: " + proc.stderr.strip())
    assert (proc.stdout, proc.stderr) == ("", "")


def test_not_root_names_the_missing_command_in_one_line(bin_dir):
    path = _path_without(bin_dir, "socat")
    argv = [str(NEED)]
    if os.geteuid() == 0:
        argv = NOBODY + argv
        netns.require_tool("setpriv")
    line = _one_line(_run(argv, path))
    assert line.startswith("tools/need.sh: missing socat ")
    assert "sudo apt-get install socat" in line, line


def test_root_without_apt_names_the_missing_command_in_one_line(bin_dir):
    if os.geteuid() != 0:
        mp.missing("needs root (the root branch of tools/need.sh)")
    line = _one_line(_run([str(NEED), "linux"], _path_without(bin_dir, "socat", "apt-get")))
    assert line.startswith("tools/need.sh: missing socat ")
    assert "package manager" in line and "apt-get install socat" in line, line


def test_root_with_apt_installs_noninteractively(bin_dir):
    if os.geteuid() != 0:
        mp.missing("needs root (the root branch of tools/need.sh)")
    path = _path_without(bin_dir, "socat", "tshark", "apt-get", "debconf-set-selections")
    log = os.path.join(bin_dir, "log")
    # Fakes: they log what they were asked and install nothing.
    fakes = (("apt-get", 'echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND apt-get $*" >> %s' % log),
             ("debconf-set-selections", "cat >> %s" % log))
    for name, body in fakes:
        with open(os.path.join(bin_dir, name), "w") as f:
            f.write("#!/bin/sh\n%s\n" % body)
        os.chmod(os.path.join(bin_dir, name), 0o755)
    proc = _run([str(NEED)], path)
    with open(log) as f:
        assert f.read().splitlines() == [
            "wireshark-common wireshark-common/install-setuid boolean false",
            "DEBIAN_FRONTEND= apt-get update",
            "DEBIAN_FRONTEND=noninteractive apt-get install -y socat tshark",
        ]
    assert proc.stdout.splitlines()[0] == ("tools/need.sh: installing socat tshark"
                                           " (missing: socat, tshark)")
    # The fake installed nothing: need.sh checks again and says so.
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "tools/need.sh: still missing socat, tshark after apt-get install socat tshark"]
