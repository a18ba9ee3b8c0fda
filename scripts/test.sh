#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, and runs every test
# (Check unit tests, process tests with real traffic, and tests against a
# real systemd --user manager, which skip with the reason when not root).
# Ends with one line "N passed, N failed, N skipped" counting test cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
# enabled, not auto: a build dir the demo configured before Check was
# installed gets its tests now.
bash scripts/build.sh -Dtests=enabled
status=0
meson test -C "${BUILD_DIR:-build}" --print-errorlogs "$@" || status=$?
python3 scripts/summarize.py "${BUILD_DIR:-build}"
exit $status
