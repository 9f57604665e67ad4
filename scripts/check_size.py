"""List modules over about 400 lines and functions over about 80 lines (the layout's size
limits; "about": up to 10 % more passes, since the formatter puts one argument a line)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MODULE_LINES, FUNCTION_LINES = 440, 88


def main(src: str = "src") -> int:
    found = 0
    for path in sorted(Path(src).rglob("*.py")):
        text = path.read_text()
        n = text.count("\n")
        if n > MODULE_LINES:
            print(f"{path}: {n} lines (module limit {MODULE_LINES})")
            found += 1
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_LINES:
                    print(
                        f"{path}:{node.lineno}: {node.name} {length} lines (function limit "
                        f"{FUNCTION_LINES})"
                    )
                    found += 1
    print(f"{found} over the limits")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
