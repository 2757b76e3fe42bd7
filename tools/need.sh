#!/usr/bin/env bash
# What `make test` needs from the system: install what is missing, or say what it is and stop.
# MIT licence.
#
#   tools/need.sh [venv] [node] [make] [linux] [mcu]      (no argument: all of them)
#
# venv: python3 with venv/ensurepip (Debian splits them out of python3); node: node and npm
# (Debian's nodejs comes without npm); make; linux: the tools the tests against the Linux
# kernel use (namespaces, veth, `ss` states, peers and probes) and tshark, which reads the
# board's packet capture back in the firmware tests; mcu: QEMU and the ARM toolchain that build
# and run bare-metal MicroPython on emulated Cortex-M boards (tools/mcu.py), installed without
# their recommended packages (with them, about 2.5 GB more: ffmpeg, GStreamer, ...).
#
# Nothing missing: prints nothing, exits 0. Root with apt-get: installs the Debian packages
# non-interactively. Otherwise: one line on stderr naming what is missing and the packages
# that provide it, exit 1. `make test` runs this first; so does the CI (.ci/run, via make).
set -euo pipefail

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(venv node make linux mcu)

missing=()   # what is missing, as the user would look for it (commands)
packages=()  # the Debian packages that provide it
norec=()     # those of them to install with --no-install-recommends

# need PACKAGE CHECK WHAT: PACKAGE is missing unless the shell command CHECK succeeds.
need() {
    if ! eval "$2" >/dev/null 2>&1; then
        missing+=("$3")
        packages+=("$1")
        [ "${4:-}" != norec ] || norec+=("$1")
    fi
}

has() {
    local c
    for c in "$@"; do command -v "$c" || return 1; done
}

detect() {
    missing=()
    packages=()
    norec=()
    local g
    for g in "${groups[@]}"; do
        case $g in
            venv) need python3-venv "python3 -c 'import ensurepip, venv'" "python3 venv" ;;
            node) need nodejs "has node" node
                  need npm "has npm" npm ;;
            make) need make "has make" make ;;
            linux)
                need iproute2 "has ip ss" "ip/ss"
                need curl "has curl" curl
                need socat "has socat" socat
                need iputils-ping "has ping" ping
                need procps "has sysctl ps pkill" "sysctl/ps/pkill"
                need util-linux "has setpriv nsenter runuser" "setpriv/nsenter/runuser"
                need dnsmasq-base "has dnsmasq" dnsmasq
                need bind9-dnsutils "has dig" dig
                need mosquitto "has mosquitto || test -x /usr/sbin/mosquitto" mosquitto
                need mosquitto-clients "has mosquitto_sub mosquitto_pub" \
                    "mosquitto_sub/mosquitto_pub"
                need openssl "has openssl" openssl
                need tshark "has tshark" tshark ;;
            mcu)
                need qemu-system-arm "has qemu-system-arm" qemu-system-arm norec
                need gcc-arm-none-eabi "has arm-none-eabi-gcc" arm-none-eabi-gcc norec
                need libnewlib-arm-none-eabi "test -e /usr/lib/arm-none-eabi/newlib/libc.a" \
                    "newlib for arm-none-eabi" norec ;;
            *) echo "tools/need.sh: unknown group '$g' (venv, node, make, linux, mcu)" >&2
               exit 2 ;;
        esac
    done
}

# "a, b, c" for the message.
joined() {
    local IFS=","
    echo "$*" | sed 's/,/, /g'
}

detect
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    if [ "$(id -u)" != 0 ] && command -v apt-get >/dev/null; then
        how="run make as root to install them, or: sudo apt-get install ${packages[*]}"
        if [ ${#norec[@]} -gt 0 ]; then
            # The QEMU/ARM packages: without --no-install-recommends they bring ~2.5 GB more.
            how="$how (--no-install-recommends for ${norec[*]})"
        fi
    else
        how="install them with your package manager (on Debian: apt-get install ${packages[*]})"
    fi
    echo "tools/need.sh: missing $(joined "${missing[@]}") (Debian packages:" \
        "${packages[*]}); $how" >&2
    exit 1
fi

echo "tools/need.sh: installing ${packages[*]} (missing: $(joined "${missing[@]}"))"
# wireshark-common asks whether non-root users may capture: answer no, unasked.
echo "wireshark-common wireshark-common/install-setuid boolean false" \
    | debconf-set-selections 2>/dev/null || true
apt-get update
rec=()
for p in "${packages[@]}"; do
    [[ " ${norec[*]} " == *" $p "* ]] || rec+=("$p")
done
if [ ${#rec[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${rec[@]}"
fi
if [ ${#norec[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${norec[@]}"
fi

# A package that installed but still left the command missing (renamed, diverted) is named too.
hash -r
detect
if [ ${#missing[@]} -gt 0 ]; then
    echo "tools/need.sh: still missing $(joined "${missing[@]}") after" \
        "apt-get install ${packages[*]}" >&2
    exit 1
fi
