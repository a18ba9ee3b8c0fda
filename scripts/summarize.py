#!/usr/bin/env python3
"""Sums the test cases of one or more meson build directories from their
testlog.json (and of plain logs named *.log, by their last summary line): Check's "Checks: N, Failures: F, Errors: E" lines and our
Python harness's "N passed, N failed, N skipped" lines; a meson test that
printed neither counts as one case. Prints "N passed, N failed, N skipped"."""

import json
import re
import sys

passed = failed = skipped = 0
for d in sys.argv[1:]:
    if d.endswith(".log"):
        # A plain log (the benchmark's) whose last summary line counts.
        with open(d) as f:
            found = re.findall(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", f.read(), re.M)
        if found:
            p, fl, s = found[-1]
            passed, failed, skipped = passed + int(p), failed + int(fl), skipped + int(s or 0)
        else:
            failed += 1
        continue
    with open(f"{d}/meson-logs/testlog.json") as f:
        for line in f:
            t = json.loads(line)
            out = t.get("stdout") or ""
            checks = re.findall(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", out)
            harness = re.findall(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", out, re.M)
            if checks:
                for n, fl, er in checks:
                    passed += int(n) - int(fl) - int(er)
                    failed += int(fl) + int(er)
            elif harness:
                p, fl, s = harness[-1]
                passed, failed, skipped = passed + int(p), failed + int(fl), skipped + int(s)
            elif t["result"] == "SKIP":
                skipped += 1
            elif t["result"] in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
            # A test that failed as a whole (crash, timeout) fails even if
            # every case it printed passed.
            if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and not (checks and any(int(x[1]) + int(x[2]) for x in checks)) \
                    and not (harness and int(harness[-1][1])):
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
