#!/usr/bin/env python3
"""Fails when the modules in src/ depend on each other in a circle.

A module is a .c file and its .h; module A depends on module B when A's .c
or .h includes B's header. Run by .ci/run; prints the dependency tree's
edges with -v.

Also fails when a file the reload client (handoffctl) is compiled from,
client_sources in src/meson.build and what they include, includes a
libsystemd header: handoffctl is libc only."""
import os
import re
import sys

src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
edges = {}
for name in sorted(os.listdir(src)):
    mod, ext = os.path.splitext(name)
    if ext not in (".c", ".h"):
        continue
    with open(os.path.join(src, name)) as f:
        incs = re.findall(r'^#include "([a-z0-9-]+)\.h"', f.read(), re.M)
    edges.setdefault(mod, set()).update(i for i in incs if i != mod)

state, cycles = {}, []


def visit(u, stack):
    state[u] = "open"
    stack.append(u)
    for v in sorted(edges.get(u, ())):
        if state.get(v) == "open":
            cycles.append(stack[stack.index(v):] + [v])
        elif v not in state:
            visit(v, stack)
    stack.pop()
    state[u] = "done"


for m in sorted(edges):
    if m not in state:
        visit(m, [])
if "-v" in sys.argv:
    for m in sorted(edges):
        print(f"{m} -> {' '.join(sorted(edges[m])) or '-'}")



def fail(why):
    print("check-includes: " + why, file=sys.stderr)
    sys.exit(1)


# handoffctl's sources: the files() list of client_sources (up to the ")"
# that closes it at the start of a line) and the sources of its executable().
with open(os.path.join(src, "meson.build")) as f:
    build = f.read()
block = re.search(r"^client_sources = files\((.*?)^\)", build, re.M | re.S)
target = re.search(r"^handoffctl = executable\('handoffctl',([^\n]*)", build, re.M)
if not block or not target:
    fail("src/meson.build: no client_sources = files(...) or handoffctl = executable('handoffctl', ...) to read")
if re.search(r"^client_sources\s*\+=", build, re.M):
    fail("src/meson.build: client_sources is added to after its files(): list them in one place")
client = re.findall(r"'([^']+\.c)'", block.group(1)) + re.findall(r"'([^']+\.c)'", target.group(1))
if "handoffctl.c" not in client:
    fail("src/meson.build: handoffctl's executable() does not name handoffctl.c")
seen, todo, libsystemd = set(), list(client), []
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    try:
        with open(os.path.join(src, name)) as f:
            text = f.read()
    except OSError as e:
        fail(f"{name}, a file handoffctl is built from, cannot be read: {e.strerror}")
    if re.search(r"^\s*#\s*include\s*<systemd/", text, re.M):
        libsystemd.append(name)
    todo += re.findall(r'^\s*#\s*include\s*"([^"]+\.h)"', text, re.M)
for name in sorted(libsystemd):
    print(f"check-includes: {name} is part of handoffctl (libc only) and includes a libsystemd header",
          file=sys.stderr)
if cycles:
    for c in cycles:
        print("check-includes: circle: " + " -> ".join(c), file=sys.stderr)
if cycles or libsystemd:
    sys.exit(1)
print(f"check-includes: {len(edges)} modules in src/, no circle; handoffctl's {len(seen)} files "
      "include no libsystemd header")
