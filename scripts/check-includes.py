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

with open(os.path.join(src, "meson.build")) as f:
    block = re.search(r"^client_sources = files\((.*?)\)", f.read(), re.M | re.S)
client = ["handoffctl.c"] + re.findall(r"'([a-z0-9-]+\.c)'", block.group(1))
seen, todo, libsystemd = set(), list(client), []
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    with open(os.path.join(src, name)) as f:
        text = f.read()
    if re.search(r"^#include <systemd/", text, re.M):
        libsystemd.append(name)
    todo += [i + ".h" for i in re.findall(r'^#include "([a-z0-9-]+)\.h"', text, re.M)]
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
