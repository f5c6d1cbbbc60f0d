#!/usr/bin/env python3
"""Lists the functions of C/C++ files with their length in lines, longest
first: a function starts at a line in column 0 that ends with '{' (after a
signature, possibly over several lines) and ends at the next '}' in column 0.
That is the code style of this tree (clang-format, no nested namespaces'
bodies indented), so the count is exact for it.

  scripts/function_lengths.py [--over N] FILE...
"""
import re
import sys


def functions(path):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    out, start, name = [], None, None
    for i, line in enumerate(lines):
        if start is None:
            if line and not line[0].isspace() and line.rstrip().endswith("{") and "(" in "".join(lines[max(0, i - 3):i + 1]) \
                    and not re.match(r"(namespace|struct|class|enum|union|extern)\b", line) and "=" not in line.split("(")[0]:
                j = i
                while j > 0 and "(" not in lines[j]:
                    j -= 1
                m = re.search(r"([\w:~<>]+)\s*\(", lines[j])
                start, name = j, m.group(1) if m else lines[j].strip()
        elif line.startswith("}"):
            out.append((i - start + 1, name, path, start + 1))
            start = None
    return out


def main(argv):
    over = 0
    if argv[:1] == ["--over"]:
        over, argv = int(argv[1]), argv[2:]
    rows = sorted((f for p in argv for f in functions(p)), reverse=True)
    for n, name, path, line in rows:
        if n > over:
            print(f"{n:5d}  {name}  {path}:{line}")


if __name__ == "__main__":
    main(sys.argv[1:])
