#!/usr/bin/env python3
"""Doxygen INPUT_FILTER: the headers' plain // comments become documentation comments.

sparsimix's headers comment their declarations with //, as the rest of the code (STYLE.md);
Doxygen only reads ///. On the fly, for Doxygen alone:
  - the file's opening comment block becomes its @file description;
  - a run of // lines directly above a declaration (or a #define) becomes /// (its brief is the
    first line), section dividers (`// ---- layernorm ----`) excepted;
  - a trailing `// ...` after a member declaration (`int x = 0;  // what x is`) becomes ///<;
  - a declaration of several variables (`double lo = 0, hi = 1;  // the range`) gives that
    comment to each of them (Doxygen alone would document only the first or the last).
Comments inside function bodies are left alone. Lines are never added or removed, so Doxygen's
line numbers are the header's. Usage: doxygen_filter.py FILE (writes stdout).
"""
import re
import sys

DECL_END = re.compile(r"^\s*[^/\s].*[;,]\s*//\s?(.*)$")
NOT_VARIABLES = re.compile(r"\s*(return|template|using|typedef|friend|class|struct|enum|union|namespace)\b")


def top_level_commas(code, depth):
    """Offsets of the commas of `code` outside (), [], {} and template <>; depth[0] carries the
    nesting from the statement's previous lines."""
    commas = []
    i = 0
    while i < len(code):
        c = code[i]
        if c == '"':  # string literal
            i += 1
            while i < len(code) and code[i] != '"':
                i += 2 if code[i] == "\\" else 1
        elif c == "'" and not (i > 0 and code[i - 1].isalnum() and code[i + 1:i + 2].isalnum()):
            i = code.find("'", i + 2 if code[i + 1:i + 2] == "\\" else i + 1)  # char literal
            if i < 0:
                break
        elif code.startswith("<<", i) or code.startswith("->", i):
            i += 1
        elif c == "<" and re.search(r"(\w|template\s*)$", code[:i]) and not code.startswith("<=", i):
            depth[0] += 1
        elif c in "([{":
            depth[0] += 1
        elif c in ")]}" or (c == ">" and depth[0] > 0):
            depth[0] -= 1
        elif c == "," and depth[0] == 0:
            commas.append(i)
        i += 1
    return commas


def document_declarators(lines, i, doc, above):
    """When lines[i...] declare several variables (`double lo = 0, hi = 1;`), gives each its own
    copy of `doc`: an inline /**< */ before the comma or semicolon that ends it. The first is
    left to a /// run `above`, the last to a trailing ///< otherwise. Returns the new lines."""
    if "*/" in doc or NOT_VARIABLES.match(lines[i]):
        return None
    depth, ends, j = [0], [], i
    while True:
        code = lines[j].split("//", 1)[0].rstrip()
        if j >= i + 4 or not code.strip() or code.lstrip().startswith("#"):
            return None
        ends += [(j, pos) for pos in top_level_commas(code, depth)]
        if depth[0] != 0 or code.endswith(("{", "}")):
            return None
        if code.endswith(";"):
            break
        j += 1
    if not ends:
        return None
    ends = ends[1:] + [(j, len(code) - 1)] if above else ends
    group = lines[i:j + 1]
    if not above:
        group[-1] = group[-1].replace("//", "///<", 1)
    for k, pos in reversed(ends):
        group[k - i] = group[k - i][:pos] + " /**< " + doc + " */" + group[k - i][pos:]
    return group


def main():
    lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
    out = []
    depth_in_function = 0  # brace depth inside a function body (not class or namespace)
    i = 0
    # The opening comment: @file (at the end of its last line, keeping the line numbers).
    if lines and lines[0].startswith("//"):
        while i < len(lines) and lines[i].startswith("//"):
            out.append("///" + lines[i][2:])
            i += 1
        out[-1] += " @file"
    pending_doc = None  # the // run just above lines[i], when it documents lines[i]
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if re.match(r"//\s*-{3,}", stripped):  # a section divider (`// ---- leaves ----`) documents nothing
            out.append(line)
            i += 1
            continue
        if stripped.startswith("//") and not stripped.startswith("///"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("//"):
                j += 1
            nxt = lines[j].strip() if j < len(lines) else ""
            documents = (depth_in_function == 0 and nxt != "" and not nxt.startswith("}")
                         and (not nxt.startswith("#") or nxt.startswith("#define")))
            for k in range(i, j):
                ln = lines[k]
                out.append(ln.replace("//", "///", 1) if documents else ln)
            if documents:
                pending_doc = " ".join(lines[k].strip()[2:].strip() for k in range(i, j))
            i = j
            continue
        m = DECL_END.match(line)
        code = line.split("//", 1)[0].rstrip()
        doc, pending_doc = pending_doc, None
        if depth_in_function == 0:
            trailing = m.group(1).strip() if m and code.endswith(";") else None
            group = document_declarators(lines, i, doc, True) if doc else \
                document_declarators(lines, i, trailing, False) if trailing else None
            if group:
                out += group
                i += len(group)
                continue
        if m and depth_in_function == 0 and code.endswith((";", ",")) and not code.lstrip().startswith("return"):
            out.append(line.split("//", 1)[0] + "///<" + line.split("//", 1)[1])
        else:
            out.append(line)
        # Track function bodies roughly: a line ending in ") {" or ") const {" opens one.
        code = line.split("//")[0]
        if depth_in_function > 0:
            depth_in_function += code.count("{") - code.count("}")
            depth_in_function = max(depth_in_function, 0)
        elif re.search(r"\)\s*(const\s*)?(noexcept\s*)?(override\s*)?(->\s*[\w:<>, ]+\s*)?\{\s*$", code) \
                and not re.match(r"\s*(namespace|struct|class|enum|union)\b", code):
            depth_in_function = 1 + code.count("{") - 1 - code.count("}")
            depth_in_function = max(depth_in_function, 1) if code.count("{") > code.count("}") else 0
        i += 1
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
