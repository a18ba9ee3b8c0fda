#!/usr/bin/env bash
# Installs what building and testing handoff needs on Debian (12 or later).
# The one list of packages: the README's commands and .ci/run all use it.
set -euo pipefail

packages=(
        gcc meson ninja-build pkg-config   # build
        libsystemd-dev                     # sd-daemon, sd-event
        check                              # unit tests
        python3 curl                       # process tests, demo
        gunicorn                           # a real third-party server in the tests
        uwsgi uwsgi-plugin-python3 lighttpd nodejs puma ruby-sd-notify \
        golang-go golang-github-coreos-go-systemd-dev   # the compatibility suite (tests/compat/)
        systemd dbus-user-session          # the real systemd --user manager tests
        wrk                                # load for the benchmark
        valgrind                           # the leak test over 100 reloads
        clang libclang-rt-14-dev           # libFuzzer (clang only recommends its runtime)
)

missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
        command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
else
        SUDO=
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
