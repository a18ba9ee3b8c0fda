#!/usr/bin/env bash
# Installs what a command needs on Debian (12 or later), one list per command:
#
#   install-deps.sh demo      scripts/demo.sh: build handoff and the demo server
#   install-deps.sh test      scripts/test.sh: everything the test suites use (includes demo)
#   install-deps.sh package   scripts/build-deb.sh: the Debian package, and lintian
#   install-deps.sh all       test + package (.ci/run)
#
# Each list is the one place its packages are named.
set -euo pipefail

demo=(
        gcc libc6-dev meson ninja-build pkg-config   # build (gcc only recommends libc6-dev)
        libsystemd-dev                     # sd-daemon, sd-event
        python3 curl                       # the demo's requests and its verdict
)
test=(
        "${demo[@]}"
        check                              # unit tests
        gunicorn                           # a real third-party server in the tests
        uwsgi uwsgi-plugin-python3 lighttpd nginx nodejs puma ruby-sd-notify \
        golang-go golang-github-coreos-go-systemd-dev   # the compatibility suite (tests/compat/)
        haproxy uvicorn                    # tests/compat/ too; installing them starts no daemon (no init runs here)
        systemd dbus-user-session          # the real systemd --user manager tests
        bash-completion                    # the completion test (test-install.py)
        ansible-core                       # the fleet example (examples/ansible, test-ansible.py)
        wrk libserver-starter-perl         # the benchmark's load, and a contender (start_server)
        valgrind                           # the leak test over 100 reloads
        strace                             # test-cli: what the reload client opens
        clang libclang-rt-14-dev           # libFuzzer (clang only recommends its runtime)
)
package=(
        "${demo[@]}"
        check                              # Build-Depends <!nocheck>
        debhelper dpkg-dev fakeroot        # dpkg-buildpackage with dh
        lintian
)

case "${1:-}" in
demo) packages=("${demo[@]}") ;;
test) packages=("${test[@]}") ;;
package) packages=("${package[@]}") ;;
all) packages=("${test[@]}" "${package[@]}") ;;
*)
        echo "usage: install-deps.sh demo|test|package|all" >&2
        exit 2
        ;;
esac

missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# A package named in two lists is installed once.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
        command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
else
        SUDO=
fi
# No service may start while these install (nginx and lighttpd are web
# servers for port 80; the tests run their own). Where the machine has no
# policy-rc.d, one that denies every start (invoke-rc.d(8)) is put in place
# for the install and removed after. Without it, nginx's postinst (Debian 12)
# starts nginx on port 80 on a running system, and on a machine with
# /run/systemd/system but no systemd running (the systemd tests create it
# in a container) it fails the whole install: its "invoke-rc.d nginx start"
# runs "systemctl start", which finds no bus, and the postinst exits 1.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# install-deps.sh: no service starts while it installs packages.\nexit 101\n' \
                | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 0755 "$policy"
        trap '$SUDO rm -f "$policy"' EXIT
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
