#!/usr/bin/env python3
"""Writes the installed cerberus.service from examples/cerberus.service, the one source of
its directives: the binary's path becomes the install prefix's bindir and the leading
comment (how to copy the example by hand) says where the unit came from.

    install_unit.py IN OUT BINDIR"""
import sys

source, out, bindir = sys.argv[1:4]
with open(source) as f:
    lines = f.read().splitlines(keepends=True)
shipped = "/usr/local/bin/cerberus"
if not any(line.startswith("ExecStart=" + shipped + " ") for line in lines):
    sys.exit(f"install_unit: {source} has no 'ExecStart={shipped} ' line")
while lines and lines[0].startswith("#"):
    lines.pop(0)
header = ("# cerberus as a system service, installed with cerberus (docs/OPERATIONS.md).\n"
          "# Rules go in /etc/cerberus/rules/*.json; `systemctl reload cerberus` applies them.\n")
with open(out, "w") as f:
    f.write(header + "".join(lines).replace(shipped, bindir + "/cerberus"))
