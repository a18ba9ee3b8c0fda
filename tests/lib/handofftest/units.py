"""The shipped units (units/) and the built programs, as the tests under a
real user manager find them: from the environment meson sets, else from the
source tree and its build/ directory."""

import os
import re

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UNITS_DIR = os.environ.get("HANDOFF_UNITS_DIR") or os.path.join(SRC_ROOT, "units")


def built(var, rel):
    """$var, else build/REL in the source tree; absolute either way."""
    return os.path.abspath(os.environ.get(var) or os.path.join(SRC_ROOT, "build", rel))


def render(name, subs):
    """The shipped unit NAME (NAME.in if that exists) with @VAR@ replaced;
    every @VAR@ must be. @HANDOFFCTL@ defaults to $HANDOFFCTL_BIN, else the
    handoffctl beside @HANDOFF@ (meson builds and installs them side by
    side). @PRIVATE_USERS@ defaults to the --user copy's line
    (units/meson.build): every test here runs a --user manager."""
    subs = dict({"PRIVATE_USERS": "PrivateUsers=yes"}, **subs)
    if "HANDOFF" in subs and "HANDOFFCTL" not in subs:
        ctl = os.environ.get("HANDOFFCTL_BIN") or os.path.join(os.path.dirname(subs["HANDOFF"]), "handoffctl")
        subs = dict(subs, HANDOFFCTL=os.path.abspath(ctl))
    path = os.path.join(UNITS_DIR, name)
    if os.path.exists(path + ".in"):
        path += ".in"
    with open(path) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace("@%s@" % k, v)
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, "%s: unsubstituted %s" % (path, left)
    return text
