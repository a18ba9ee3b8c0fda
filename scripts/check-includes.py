#!/usr/bin/env python3
"""Fails when the modules in src/ depend on each other in a circle.

A module is a .c file and its .h; module A depends on module B when A's .c
or .h includes B's header. Run by .ci/run; prints the dependency tree's
edges with -v."""
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
if cycles:
    for c in cycles:
        print("check-includes: circle: " + " -> ".join(c), file=sys.stderr)
    sys.exit(1)
print(f"check-includes: {len(edges)} modules in src/, no circle")
