#!/usr/bin/env bash
# Builds the Debian package from this checkout (what git tracks, plus new
# files not ignored), out of tree: in $OUT (default build/deb), so the
# checkout stays clean. Arguments go to dpkg-buildpackage, e.g. -Pnocheck.
# Prints the path of the .deb last. Needs: scripts/install-deps.sh package.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/deb}
version=$(dpkg-parsechangelog -S Version)
src="$out/handoff-$version"
rm -rf "$out"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"
# Its log goes to stderr: stdout is only the path of the .deb.
(cd "$src" && dpkg-buildpackage -us -uc -b "$@") >&2
ls "$out"/handoff_"$version"_*.deb
