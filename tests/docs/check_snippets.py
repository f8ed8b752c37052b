#!/usr/bin/env python3
"""Every C++ code block in README.md and docs/ is either compiled code or a checked synopsis.

A block is preceded by one of these comments (on the line before the ```cpp fence):
  <!-- snippet: PATH -->        the block equals PATH (a file the build compiles: under
  <!-- snippet: PATH NAME -->   examples/, tests/ or docs/snippets/), or the lines between its
                                two `// [example]` (or `// [example NAME]`) markers, dedented;
  <!-- synopsis: HEADER -->     a declaration listing: every name called or declared in it
                                (`name(`) must occur as `name(` in HEADER.
A cpp block without one of them, a snippet that differs from its file, or a synopsis naming a
function its header no longer has fails the test with file:line, so docs cannot drift from
the API. Usage: check_snippets.py REPO_ROOT
"""
import pathlib
import re
import sys

COMPILED_ROOTS = ("examples/", "tests/", "docs/snippets/")
CPP_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "decltype", "static_cast",
                "const_cast", "reinterpret_cast", "catch", "requires", "operator", "alignof",
                "noexcept", "static_assert", "template", "defined"}


def dedent(lines):
    indents = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    cut = min(indents) if indents else 0
    return [l[cut:].rstrip() for l in lines]


def region(path, name):
    lines = path.read_text().splitlines()
    marker = "// [example]" if name is None else f"// [example {name}]"
    at = [i for i, l in enumerate(lines) if l.strip() == marker]
    if not at:
        if name is not None:
            raise ValueError(f"no '{marker}' markers in {path}")
        return dedent(lines)
    if len(at) != 2:
        raise ValueError(f"{path}: expected two '{marker}' lines, found {len(at)}")
    return dedent(lines[at[0] + 1:at[1]])


def check_file(root, md, errors):
    lines = md.read_text().splitlines()
    rel = md.relative_to(root)
    blocks = 0
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```cpp":
            i += 1
            continue
        start = i
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = dedent(lines[start + 1:end])
        blocks += 1
        prev = lines[start - 1].strip() if start > 0 else ""
        where = f"{rel}:{start + 1}"
        m = re.fullmatch(r"<!-- (snippet|synopsis): (\S+)(?: (\S+))? -->", prev)
        if not m:
            errors.append(f"{where}: a cpp block without '<!-- snippet: FILE -->' or "
                          f"'<!-- synopsis: HEADER -->' on the line before it")
        else:
            kind, target, name = m.groups()
            path = root / target
            if not path.is_file():
                errors.append(f"{where}: {kind} file {target} does not exist")
            elif kind == "snippet":
                if not target.startswith(COMPILED_ROOTS):
                    errors.append(f"{where}: snippet file {target} is not under {', '.join(COMPILED_ROOTS)}")
                else:
                    try:
                        want = region(path, name)
                    except ValueError as e:
                        errors.append(f"{where}: {e}")
                    else:
                        if body != want:
                            for k, (a, b) in enumerate(zip(body + ["<end>"] * len(want), want + ["<end>"] * len(body))):
                                if a != b:
                                    errors.append(f"{where}: line {k + 1} of the block differs from {target}"
                                                  f"{' [' + name + ']' if name else ''}:\n    doc:  {a}\n    file: {b}")
                                    break
            else:
                header = path.read_text()
                code = "\n".join(re.sub(r"//.*", "", l) for l in body)
                for fn in sorted(set(re.findall(r"([A-Za-z_]\w*)\s*\(", code)) - CPP_KEYWORDS):
                    if not re.search(r"\b" + re.escape(fn) + r"\s*\(", header):
                        errors.append(f"{where}: the synopsis names {fn}(), which {target} does not declare")
        i = end + 1
    return blocks


def check_tree(root):
    files = [root / "README.md"] + sorted((root / "docs").rglob("*.md"))
    errors, blocks = [], 0
    for md in files:
        blocks += check_file(root, md, errors)
    return files, blocks, errors


def self_test():
    """A tree with one good block of each kind and one bad block of each failure kind."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        root = pathlib.Path(d)
        (root / "docs/snippets").mkdir(parents=True)
        (root / "include").mkdir()
        (root / "include/api.hpp").write_text("void run(int x);\nint size() const;\n")
        (root / "docs/snippets/a.cpp").write_text("int main() {\n  // [example]\n  run(1);\n  // [example]\n}\n")
        (root / "other.cpp").write_text("run(1);\n")
        good = ("<!-- snippet: docs/snippets/a.cpp -->\n```cpp\nrun(1);\n```\n"
                "<!-- synopsis: include/api.hpp -->\n```cpp\nvoid run(int);  // does it\nint size() const;\n```\n")
        bad = ("```cpp\nrun(1);\n```\n"                                                 # unmarked
               "<!-- snippet: docs/snippets/a.cpp -->\n```cpp\nrun(2);\n```\n"        # drifted
               "<!-- synopsis: include/api.hpp -->\n```cpp\nvoid walk(int);\n```\n"   # gone
               "<!-- snippet: other.cpp -->\n```cpp\nrun(1);\n```\n")                 # not compiled
        (root / "README.md").write_text(good)
        (root / "docs/bad.md").write_text(bad)
        _, blocks, errors = check_tree(root)
        expect = ["docs/bad.md:1: a cpp block without", "docs/bad.md:5: line 1 of the block differs",
                  "docs/bad.md:9: the synopsis names walk()", "docs/bad.md:13: snippet file other.cpp is not under"]
        ok = blocks == 6 and len(errors) == 4 and all(e.startswith(x) for e, x in zip(errors, expect))
        if not ok:
            print("\n".join(errors))
        print("self-test ok" if ok else "self-test FAILED")
        return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(sys.argv[1]).resolve()
    files, blocks, errors = check_tree(root)
    for e in errors:
        print(e)
    print(f"{blocks} cpp blocks in {len(files)} files, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
