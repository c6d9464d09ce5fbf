#!/usr/bin/env python3
"""Fails when modules under src/ (or the folder given) import each other in a cycle.

A module is a file under src/ (a `mod.rs` names its folder). Every
`crate::a::b` path in a file is an edge to the longest module prefix that
exists; `self`/`super` paths are resolved the same way. The check runs
twice: on the files, and on the top-level modules (a folder such as
`config/` counts as one module, importing what any of its files imports),
so two folders cannot lean on each other through different files. Prints
the cycles found and exits 1, or prints each graph's order (leaves first)
and exits 0.
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

# Names the crate root re-exports (`pub use auth::MeinGptAuth;`), so that
# `crate::MeinGptAuth` counts as an import of `auth`.
reexports = {}
lib = modules.get(())
if lib is not None:
    for path, names in re.findall(r"\bpub use ((?:\w+::)*\w+)::\{([^;]*)\};", open(lib, encoding="utf-8").read()):
        for item in re.findall(r"\w+(?:::\w+)*", names):
            reexports[item.split("::")[-1]] = path.split("::") + item.split("::")
    for path, item in re.findall(r"\bpub use ((?:\w+::)*\w+)::(\w+);", open(lib, encoding="utf-8").read()):
        reexports[item] = path.split("::") + [item]

path_re = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
group_re = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", re.S)
edges = {m: set() for m in modules}
for module, path in modules.items():
    text = open(path, encoding="utf-8").read()
    # Unit tests may reach anywhere; they are not part of the graph.
    text = re.split(r"#\[cfg\((?:all\()?test\b[^\]]*\]\s*mod tests", text)[0]
    # Comments (doc links included) name modules without importing them.
    text = re.sub(r"(?m)^\s*//.*$", "", text)
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
        parts = [p for p in parts if p]
        if parts and (parts[0],) not in modules and parts[0] in reexports:
            parts = reexports[parts[0]] + parts[1:]
        target = resolve(parts)
        if target is not None and target != module and target != ():
            # A module using its own submodule is not an upward edge.
            if target[: len(module)] == module:
                continue
            edges[module].add(target)

def components(graph):
    """Tarjan's strongly connected components of `graph`, leaves first."""
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in sorted(graph[v]):
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
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs

# The same graph one level up: a top-level module (a file under src/, or a
# folder with everything in it) imports another when any of its files does.
folders = {m[:1]: set() for m in modules if m}
for module, targets in edges.items():
    for target in targets:
        if module and target and module[:1] != target[:1]:
            folders[module[:1]].add(target[:1])

sys.setrecursionlimit(10000)
name = lambda m: "::".join(m) or "lib"
failed = False
for kind, graph in (("module", edges), ("top-level module", folders)):
    sccs = components(graph)
    cycles = [scc for scc in sccs if len(scc) > 1]
    for scc in cycles:
        failed = True
        print(f"import cycle among {kind}s:", ", ".join(sorted(name(m) for m in scc)))
        for m in sorted(scc):
            print(f"  {name(m)} -> {', '.join(sorted(name(t) for t in graph[m] if t in scc))}")
    if not cycles:
        print(f"no import cycle among {len(graph)} {kind}s; leaves first:")
        print("  " + " < ".join(name(scc[0]) for scc in sccs if scc[0] != ()))
sys.exit(1 if failed else 0)
