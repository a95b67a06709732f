"""The README's synopsis of every subcommand names exactly the flags its --help lists, so the
two cannot drift apart: a flag added to the code without the docs (or documented but gone)
fails here. Also checks that what emit's help says of its exit codes matches the README."""
import re

from harness import check, run_cli, SOURCE_ROOT

readme = open(f"{SOURCE_ROOT}/README.md").read()

# Fenced blocks that start with "cerberus ": one synopsis per line that starts with it.
synopses = []
for block in re.findall(r"```\n(cerberus .*?)```", readme, re.S):
    synopses += re.split(r"\n(?=cerberus )", block.strip())
check(len(synopses) >= 10, f"found only {len(synopses)} synopses in README.md")


def command_of(synopsis):
    """['silence', 'add'] for 'cerberus silence [--db FILE] add --unit GLOB ...'."""
    words = [w for w in synopsis.split()[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
    command = words[:1]
    if command == ["silence"]:
        command += words[1:2]
    return command


def help_flags(command):
    out = run_cli(*command, "--help")
    check(out.returncode == 0, f"cerberus {' '.join(command)} --help exited {out.returncode}")
    flags = set(re.findall(r"^\s+(?:-\w,)?(--[a-z][a-z-]*)", out.stdout, re.M))
    return flags - {"--help"}


seen = set()
for synopsis in synopses:
    command = command_of(synopsis)
    documented = set(re.findall(r"--[a-z][a-z-]*", synopsis))
    listed = help_flags(command)
    # Options of `silence` itself (--db) are listed by `silence --help`, not by its actions'.
    if command[0] == "silence":
        listed |= help_flags(command[:1])
    check(documented == listed,
          f"cerberus {' '.join(command)}: README synopsis has {sorted(documented)}, "
          f"--help lists {sorted(listed)}")
    seen.add(command[0])

top = run_cli("--help").stdout
subcommands = set(re.findall(r"^  ([a-z][a-z-]+)\s", top.split("Subcommands:", 1)[1], re.M))
check(subcommands == seen,
      f"subcommands in --help {sorted(subcommands)}, README synopses for {sorted(seen)}")

emit_help = " ".join(run_cli("emit", "--help").stdout.split())
for code in ("Exit 0", "1 when", "2 for", "3 when"):
    check(code in emit_help, f"emit --help does not say '{code}': {emit_help}")
print(f"ok: {len(synopses)} synopses match the --help of {len(seen)} subcommands")
