"""Derives the folder include graph of include/sparsimix from its #include lines and fails
when a header includes a higher layer or the folders include each other in a cycle
(docs/architecture.md, "Layers"). Usage:
    check_layers.py INCLUDE_DIR      check the library (exit 1 and a list of violations)
    check_layers.py --self-test      check that an upward include and a cycle are caught
"""
import os
import re
import sys
import tempfile

# Lowest first. A header may include its own layer and the layers below it, never above.
LAYERS = ["core", "kernels", "autograd", "mixers", "models", "io", "data", "distill", "experiment", "cli"]
# Files directly under include/sparsimix/: the light core-level headers, the per-folder
# aggregates (the layer of their folder) and the umbrella (everything but cli).
ROOT_FILES = {"fwd.hpp": "core", "version.hpp": "core", "concepts.hpp": "core", "sparsimix.hpp": "experiment"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(rel):
    parts = rel.split("/")
    if len(parts) == 1:
        name = parts[0]
        if name in ROOT_FILES:
            return ROOT_FILES[name]
        stem = name[:-4] if name.endswith(".hpp") else name
        if stem in LAYERS:
            return stem
        return None
    return parts[0] if parts[0] in LAYERS else None


def graph(root):
    """{(from_layer, to_layer): [(file, included file)]}, unknown folders as errors."""
    edges, errors = {}, []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".hpp"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            src = layer_of(rel)
            if src is None:
                errors.append(f"{rel}: not in a known layer folder ({', '.join(LAYERS)})")
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for inc in INCLUDE.findall(text):
                target = os.path.normpath(os.path.join(os.path.dirname(path), inc))
                trel = os.path.relpath(target, root).replace(os.sep, "/")
                if trel.startswith(".."):
                    errors.append(f"{rel}: includes \"{inc}\", outside include/sparsimix")
                    continue
                if not os.path.isfile(target):
                    errors.append(f"{rel}: includes \"{inc}\", which does not exist")
                    continue
                dst = layer_of(trel)
                if dst is None:
                    errors.append(f"{rel}: includes {trel}, not in a known layer")
                    continue
                edges.setdefault((src, dst), []).append((rel, trel))
    return edges, errors


def cycles(edges):
    adj = {}
    for (a, b) in edges:
        if a != b:
            adj.setdefault(a, set()).add(b)
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(adj.get(n, ())):
            if state.get(m) == 1:
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(adj):
        if n not in state:
            visit(n)
    return found


def check(root):
    edges, problems = graph(root)
    rank = {name: i for i, name in enumerate(LAYERS)}
    for (a, b), uses in sorted(edges.items()):
        if rank[b] > rank[a]:
            for f, t in uses:
                problems.append(f"upward include: {f} ({a}) includes {t} ({b})")
    for c in cycles(edges):
        problems.append("cycle between folders: " + " -> ".join(c))
    return edges, problems


def self_test():
    """A tree with an upward include and a cycle must fail; a clean one must pass."""
    def tree(files):
        d = tempfile.mkdtemp()
        for rel, text in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as fh:
                fh.write(text)
        return d

    clean = tree({"core/a.hpp": "", "io/b.hpp": '#include "../core/a.hpp"\n'})
    upward = tree({"core/a.hpp": '#include "../io/b.hpp"\n', "io/b.hpp": ""})
    cyclic = tree({"io/a.hpp": '#include "../distill/b.hpp"\n', "distill/b.hpp": '#include "../io/a.hpp"\n'})
    ok = not check(clean)[1]
    up = check(upward)[1]
    cy = check(cyclic)[1]
    ok = ok and any(p.startswith("upward include: core/a.hpp") for p in up)
    ok = ok and any(p.startswith("cycle between folders") for p in cy)
    print("self-test", "ok" if ok else f"FAILED: clean={check(clean)[1]} upward={up} cycle={cy}")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = sys.argv[1]
    edges, problems = check(root)
    for (a, b) in sorted(edges):
        if a != b:
            print(f"{a} -> {b} ({len(edges[(a, b)])} includes)")
    if problems:
        print("\n".join(problems))
        return 1
    print("layers ok: no upward include, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
