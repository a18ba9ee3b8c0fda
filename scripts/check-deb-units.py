#!/usr/bin/env python3
"""Fails when a unit a .deb ships runs a program that is not there once the
.deb is installed. Run by .ci/run on the package scripts/build-deb.sh built:

    python3 scripts/check-deb-units.py build/deb/handoff_*.deb

Every .service and .socket file in the package (the units under
/usr/lib/systemd and the examples under /usr/share/doc alike) is read, and
for every Exec*= line the program it runs must be a file the .deb ships,
executable, or a file of a package that is there whenever the unit can run:
an Essential one, one the .deb depends on, or systemd (so a unit that runs
/bin/kill needs a dependency on procps, which is not Essential). When that program is
handoff, the server it runs (the word after the first "--") is checked the
same way, and for handoffctl the one after the second ("handoffctl reload --
OPTIONS -- COMMAND"): the example units once ran a demo server the package
did not ship. A word taken from a variable ($COMMAND) is the user's and is
not checked."""
import gzip
import os
import shlex
import stat
import subprocess
import sys
import tempfile

# What systemd runs for a .service or a .socket (systemd.service(5),
# systemd.socket(5)).
EXEC_KEYS = {"ExecCondition", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop",
             "ExecStopPre", "ExecStopPost"}
# The programs whose argument after the Nth "--" is a program they run.
RUNS_AFTER_SEPARATOR = {"handoff": 1, "handoffctl": 2}


def exec_lines(text):
    """(key, value) of each Exec*= line, continuation lines joined."""
    joined, line = [], ""
    for raw in text.splitlines():
        if not line and raw.lstrip().startswith(("#", ";")):
            continue
        if raw.endswith("\\"):
            line += raw[:-1] + " "
            continue
        joined.append(line + raw)
        line = ""
    for line in joined:
        key, sep, value = line.partition("=")
        if sep and key.strip() in EXEC_KEYS and value.strip():
            yield key.strip(), value.strip()


def programs(value):
    """The programs an Exec*= value runs: its executable, and the server of
    handoff or handoffctl."""
    words = shlex.split(value)
    exe = words[0].lstrip("-@:+!")
    yield exe
    n = RUNS_AFTER_SEPARATOR.get(os.path.basename(exe))
    seps = [i for i, w in enumerate(words) if w == "--"]
    if n and len(seps) >= n and seps[n - 1] + 1 < len(words):
        yield words[seps[n - 1] + 1]


def packages_always_there(deb):
    """Essential packages, those the .deb depends on, and systemd."""
    names = {"systemd"}
    for field in ("Pre-Depends", "Depends"):
        r = subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True, check=True)
        for alt in r.stdout.replace("|", ",").split(","):
            if alt.strip():
                names.add(alt.split()[0].split(":")[0])
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential}\\n"], capture_output=True, text=True,
                       check=True)
    names.update(line.split()[0] for line in r.stdout.splitlines() if line.endswith(" yes"))
    return names


def owner(path):
    """The installed packages that ship path (usr-merged or not)."""
    r = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
    if r.returncode != 0 and path.startswith("/usr/"):
        r = subprocess.run(["dpkg-query", "-S", path[len("/usr"):]], capture_output=True, text=True)
    if r.returncode != 0:
        return set()
    return {p.strip().split(":")[0] for line in r.stdout.splitlines() if not line.startswith("diversion by")
            for p in line.split(": ")[0].split(",")}


def resolve(root, path):
    """Where path (absolute, as installed) leads once the package is
    installed: (that path, as installed; the file in the extracted tree root
    when the .deb ships it, else None). Symlinks the .deb ships are followed
    inside root, an absolute target from root: os.path.isfile() would follow
    one to the file of this host's own /."""
    parts, done, hops = [p for p in path.split("/") if p], [], 0
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            if part == ".." and done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return "/" + "/".join(done + [part] + parts), None
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        hops += 1
        if hops > 40:  # as the kernel's ELOOP
            return "/" + "/".join(done + [part] + parts), None
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p] + parts
    return "/" + "/".join(done), os.path.join(root, *done)


def main(deb):
    failures, checked = [], 0
    always = packages_always_there(deb)
    with tempfile.TemporaryDirectory() as root:
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        units = []
        for top, _, files in os.walk(root):
            for name in files:
                base = name[:-3] if name.endswith(".gz") else name
                if base.endswith((".service", ".socket")):
                    units.append(os.path.join(top, name))
        for path in sorted(units):
            shipped_as = "/" + os.path.relpath(path, root)
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                text = f.read()
            for key, value in exec_lines(text):
                for prog in programs(value):
                    checked += 1
                    if "$" in prog or "%" in prog:
                        print(f"{shipped_as}: {key}= runs {prog}: set by the user, not checked")
                        continue
                    if not prog.startswith("/"):
                        failures.append(f"{shipped_as}: {key}= runs {prog}, not an absolute path")
                        continue
                    installed, where = resolve(root, prog)
                    via = f" (a symlink to {installed})" if installed != prog else ""
                    if where and stat.S_ISREG(os.lstat(where).st_mode):
                        if not os.lstat(where).st_mode & stat.S_IXUSR:
                            failures.append(f"{shipped_as}: {key}= runs {prog}{via}, which the .deb ships "
                                            "without the x bit")
                    elif not owner(installed) & always:
                        failures.append(f"{shipped_as}: {key}= runs {prog}{via}, which neither the .deb nor a "
                                        "package always there (Essential, a dependency, systemd) ships")
    for f in failures:
        print(f"check-deb-units: {f}", file=sys.stderr)
    if not units:
        print(f"check-deb-units: {deb} ships no unit", file=sys.stderr)
        return 1
    print(f"check-deb-units: {len(units)} units, {checked} programs: "
          f"{'ok' if not failures else f'{len(failures)} missing'}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check-deb-units.py PACKAGE.deb")
    sys.exit(main(sys.argv[1]))
