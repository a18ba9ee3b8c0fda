#!/usr/bin/env bash
# Configures and builds handoff into BUILD_DIR (default: build). Arguments are
# meson options (-Dname=value): given to "meson setup" the first time, and to
# "meson configure" when BUILD_DIR exists already, so that e.g. the test
# command's -Dtests=enabled holds in a directory the demo configured first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null
elif [ $# -gt 0 ]; then
        meson configure "$dir" "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
