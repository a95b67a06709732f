#!/usr/bin/env python3
"""Writes the bash completion of cerberus from the binary's own --help, so it lists every
subcommand and flag the binary has: meson runs it at build time.

    bash_completion.py CERBERUS OUT

Completes subcommands (and those of `silence`), their flags, file names after --rules,
--db and --emit-socket, the bus names after --bus, the events after --event, and the system manager's service
names after -u/--unit."""
import re
import subprocess
import sys


def help_of(binary, words):
    out = subprocess.run([binary] + words + ["--help"], capture_output=True, text=True,
                         check=True)
    return out.stdout


def parse(text):
    """The flags and the subcommands a --help page lists."""
    flags, subs, part = [], [], None
    for line in text.splitlines():
        if re.match(r"^\S.*:$", line):
            part = line[:-1]
            continue
        if part == "Options":
            m = re.match(r"^\s+(-\S+)", line)
            if m:
                flags += [f.split("=")[0] for f in m.group(1).split(",") if f.startswith("-")]
        elif part == "Subcommands":
            m = re.match(r"^\s+([a-z][a-z0-9-]*)\s", line)
            if m:
                subs.append(m.group(1))
    return flags, subs


def commands(binary):
    """{'sub' or 'sub sub2': (flags, subcommands)}, with '' for the top level."""
    result, todo = {}, [[]]
    while todo:
        words = todo.pop(0)
        flags, subs = parse(help_of(binary, words))
        result[" ".join(words)] = (flags, subs)
        todo += [words + [s] for s in subs]
    return result


def script(table):
    cases = []
    for path, (flags, subs) in sorted(table.items()):
        words = " ".join(subs + flags)
        cases.append(f'        "{path}") words="{words}" ;;')
    subs_of = {path: subs for path, (_, subs) in table.items()}
    nested = " ".join(f"{p}" for p, s in sorted(subs_of.items()) if p and s)
    return f'''# bash completion for cerberus, generated from `cerberus --help` at build time.
_cerberus() {{
    local cur prev path="" word i words
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    # The subcommand path so far: the first word, and the second for {nested or "none"}.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        [[ $word == -* ]] && continue
        # The value of a global option given before the command (cerberus --db FILE ...).
        [[ ${{COMP_WORDS[i-1]}} == --db || ${{COMP_WORDS[i-1]}} == --rules ]] && continue
        if [[ -z $path ]]; then
            path=$word
        elif [[ " {nested} " == *" $path "* ]]; then
            path="$path $word"
            break
        else
            break
        fi
    done
    case $prev in
        --rules|--db|--emit-socket)
            COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
        --bus)
            COMPREPLY=($(compgen -W "system user" -- "$cur")); return ;;
        --event)
            COMPREPLY=($(compgen -W "start stop crash restart fail give_up" -- "$cur")); return ;;
        -u|--unit)
            COMPREPLY=($(compgen -W "$(systemctl list-units --all --plain --no-legend \\
                --type=service 2>/dev/null | awk '{{print $1}}')" -- "$cur")); return ;;
    esac
    case $path in
{chr(10).join(cases)}
        *) words="" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _cerberus cerberus
'''


def main():
    binary, out = sys.argv[1:3]
    with open(out, "w") as f:
        f.write(script(commands(binary)))


main()
