"""Where the server's CPU time goes: reads `perf script -F ip,sym` output
(call stacks, leaf first) and sorts each sample into one bucket by the
first frame, walking from the leaf towards the root, that names one:

  request extensions: inserting into and dropping the request's extension
      map (the layer's user and context, axum's own entries);
  the `MeinGptUser` extractor;
  the handler's JSON body: axum's `Json` and the user's `Serialize`;
  the auth layer: any other `meingpt_auth` frame (token lookup, the
      verified-token cache, the checks, handing the request on, the
      response's `Cache-Control`);
  the rest: hyper, axum's routing, tower, tokio, the kernel's socket work
      and any frame none of the above names.

Usage: python3 shares.py SCRIPT_OUTPUT  (prints one line per bucket)
"""
import re
import sys

REST = "the rest: hyper, axum's routing, tower, tokio, kernel"
# Tried in this order on each frame's function path (generic arguments
# removed, see `name`); the first frame that matches one decides.
BUCKETS = [
    ("request extensions", re.compile(r"^http::extensions::")),
    ("the `MeinGptUser` extractor", re.compile(
        r"as axum_core::extract::FromRequest|^meingpt_auth::extract::")),
    ("the handler's JSON body", re.compile(
        r"^axum::json::Json as axum_core::response|^meingpt_auth::claims::.*serialize")),
    ("the auth layer", re.compile(r"^meingpt_auth::")),
    (REST, re.compile(r"^(tower|axum|axum_core|hyper|hyper_util|tokio)::")),
]
# Dropping the extension map or an entry of it (named by its type only).
EXTENSION_DROP = re.compile(r"drop_in_place<.*(http::extensions::|AnyClone)")


def samples(path):
    stack = []
    for line in open(path, errors="replace"):
        line = line.strip()
        if not line:
            if stack:
                yield stack
            stack = []
            continue
        parts = line.split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "")
    if stack:
        yield stack


def without_generics(text):
    """`a::f<T<U>>::g` -> `a::f::g` (the `>` of a `->` closes nothing)."""
    text = text.replace("->", "→")
    out, depth = [], 0
    for c in text:
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def name(frame):
    """The frame's function path without generic arguments, so that a type
    named only in a generic argument does not count: `<A<X> as B<Y>>::f`
    becomes `A as B::f`, `poll<meingpt_auth::T>` becomes `poll`."""
    frame = frame.removesuffix(" (inlined)").replace("->", "→")
    if frame.startswith("<"):
        depth = 0
        for i, c in enumerate(frame):
            depth += {"<": 1, ">": -1}.get(c, 0)
            if depth == 0:
                return without_generics(frame[1:i]) + without_generics(frame[i + 1:])
    return without_generics(frame)


def bucket(stack):
    for frame in stack:
        if EXTENSION_DROP.search(frame):
            return "request extensions"
        function = name(frame)
        for bucket_name, pattern in BUCKETS:
            if pattern.search(function):
                return bucket_name
    return REST


counts = {bucket_name: 0 for bucket_name, _ in BUCKETS}
total = 0
for stack in samples(sys.argv[1]):
    counts[bucket(stack)] += 1
    total += 1
for bucket_name, count in counts.items():
    print(f"{bucket_name}: {100 * count / max(total, 1):.1f} %")
print(f"samples: {total}")
