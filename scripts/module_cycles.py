#!/usr/bin/env python3
"""Fails when modules under src/ (or the folder given) import each other in a cycle.

A module is a file under src/ (a `mod.rs` names its folder). Every
`crate::a::b` path in a file is an edge to the longest module prefix that
exists; `self`/`super` paths are resolved the same way. Prints the cycles
found and exits 1, or prints the graph's order (leaves first) and exits 0.
"""
import os, re, sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
modules = {}
for folder, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, root)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib"):
            rel = rel[:-1]
        modules[tuple(rel)] = path

def resolve(parts):
    for end in range(len(parts), 0, -1):
        if tuple(parts[:end]) in modules:
            return tuple(parts[:end])
    return None

path_re = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
group_re = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", re.S)
edges = {m: set() for m in modules}
for module, path in modules.items():
    text = open(path, encoding="utf-8").read()
    # Unit tests may reach anywhere; they are not part of the graph.
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
    is_mod_rs = path.endswith(("mod.rs", "lib.rs"))
    def base(anchor):
        if anchor == "crate":
            return []
        here = list(module) if is_mod_rs else list(module[:-1]) + [module[-1]]
        if anchor == "self":
            return here
        return here[:-1]
    found = []
    for anchor, rest in path_re.findall(text):
        found.append(base(anchor) + rest.strip(":").split("::"))
    for anchor, prefix, group in group_re.findall(text):
        for item in re.findall(r"(\w+(?:::\w+)*)", group):
            found.append(base(anchor) + prefix.strip(":").split("::") + item.split("::") if prefix else base(anchor) + item.split("::"))
    for parts in found:
        target = resolve([p for p in parts if p])
        if target is not None and target != module and target != ():
            # A module using its own submodule is not an upward edge.
            if target[: len(module)] == module:
                continue
            edges[module].add(target)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop(); on.discard(w); scc.append(w)
            if w == v:
                break
        sccs.append(scc)
sys.setrecursionlimit(10000)
for v in sorted(modules):
    if v not in index:
        visit(v)
name = lambda m: "::".join(m) or "lib"
cycles = [scc for scc in sccs if len(scc) > 1]
if cycles:
    for scc in cycles:
        print("import cycle:", ", ".join(sorted(name(m) for m in scc)))
        for m in sorted(scc):
            print(f"  {name(m)} -> {', '.join(sorted(name(t) for t in edges[m] if t in scc))}")
    sys.exit(1)
print("no import cycle among", len(modules), "modules; leaves first:")
print("  " + " < ".join(name(scc[0]) for scc in sccs if scc[0] != ()))
