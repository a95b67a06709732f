#!/usr/bin/env python3
"""Fails when a public header does not compile alone or pulls in a C library's header.

A public header is every src/**/*.hpp but a folder's detail.hpp. Each is compiled alone
(`echo '#include "HEADER"' | CXX -std=c++20 -fsyntax-only -Isrc -H -x c++ -`); -H lists every
header it reads, which must name none of sqlite3, libsystemd, sdbus-c++, libcurl or OpenSSL:
those stay in the .cpp files of the one folder that wraps them (docs/ARCHITECTURE.md).

usage: check_headers.py [--root DIR] [CXX ...]   (CXX defaults to c++)
"""

import concurrent.futures
import pathlib
import re
import subprocess
import sys

FLAGS = ["-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Wpedantic", "-H"]

# What a public header must never reach, by the path -H prints.
FORBIDDEN = [
    ("sqlite3", re.compile(r"(^|/)sqlite3(ext)?\.h$")),
    ("libsystemd", re.compile(r"(^|/)systemd/[^/]+\.h$")),
    ("sdbus-c++", re.compile(r"(^|/)sdbus-c\+\+/")),
    ("libcurl", re.compile(r"(^|/)curl/[^/]+\.h$")),
    ("OpenSSL", re.compile(r"(^|/)openssl/[^/]+\.h$")),
]

# -H prints one line per header read: dots for its depth, a space, the path.
INCLUDE_LINE = re.compile(r"^\.+ (\S.*)$")


def public_headers(src):
    return sorted(
        p for p in src.rglob("*.hpp") if p.name != "detail.hpp" and "detail" not in p.parts
    )


def check(cxx, root, header):
    """One sentence per problem of `header`; empty when it is clean."""
    relative = header.relative_to(root / "src")
    # Through stdin, not -include: -H leaves out what a forced include reads.
    command = cxx + FLAGS + ["-I" + str(root / "src"), "-x", "c++", "-"]
    done = subprocess.run(command, input=f'#include "{relative}"\n', capture_output=True,
                          text=True, timeout=120)
    problems = []
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if ": error:" in line]
        problems.append(f"src/{relative} does not compile alone; include what it uses:\n  " +
                        "\n  ".join(errors[:10]))
    reported = set()
    for line in done.stderr.splitlines():
        match = INCLUDE_LINE.match(line)
        if not match:
            continue
        path = match.group(1)
        for library, pattern in FORBIDDEN:
            if pattern.search(path) and library not in reported:
                reported.add(library)
                problems.append(f"src/{relative} pulls in {library}'s header '{path}'; "
                                "forward-declare its types or move what needs it into a .cpp "
                                "or a detail header")
    return problems


def main(argv):
    root = pathlib.Path(__file__).resolve().parent.parent
    if len(argv) >= 2 and argv[0] == "--root":
        root = pathlib.Path(argv[1]).resolve()
        argv = argv[2:]
    cxx = argv or ["c++"]
    # A compiler cache in front (meson's cmd_array) only gets in the way of -H.
    if len(cxx) > 1 and pathlib.Path(cxx[0]).name in ("ccache", "sccache"):
        cxx = cxx[1:]
    headers = public_headers(root / "src")
    if not headers:
        print(f"no public headers under {root / 'src'}", file=sys.stderr)
        return 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda h: check(cxx, root, h), headers))
    problems = [p for result in results for p in result]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"public headers: {len(headers)} compile alone without a C library's header")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
