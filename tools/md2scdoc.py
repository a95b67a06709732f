#!/usr/bin/env python3
"""Writes a man page in scdoc syntax from sections of the project's Markdown, so the man
pages and the documentation have one source: README.md's usage for cerberus(1),
docs/RULES.md for cerberus-rules(5). meson runs it, then scdoc, at build time.

    md2scdoc.py OUT NAME SECTION SUMMARY SEE_ALSO FILE[#Heading]...

FILE#Heading takes one '## Heading' section of FILE (up to the next '## '); a bare FILE
takes all of it but its '# Title' line. The Markdown used in this project maps as follows:
'##' -> section, '###' and deeper -> subsection, `code` -> bold, [text](link) -> text,
lists and fenced blocks as they are, tables -> one list item per row."""
import re
import sys


def escape(text):
    return re.sub(r"([\\*_])", r"\\\1", text)


def inline(text):
    """`code` becomes bold, links their text; everything else is escaped for scdoc."""
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)",
                  lambda m: m.group(1) + (f" ({m.group(2)})" if "://" in m.group(2) else ""),
                  text)
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"*{escape(part)}*" if part.strip() else escape(part))
        else:
            # Markdown emphasis (**x**, *x*) is kept as bold.
            part = re.sub(r"\*\*([^*]+)\*\*", "\0\\1\0", part)
            out.append(escape(part).replace("\0", "*"))
    return "".join(out)


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def convert(lines):
    out = []
    fence = None  # the indentation of an open ``` block
    header = None  # the header cells of the table being read
    items = []  # the indentation of each open list item, outermost first
    for line in lines:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if fence is not None:
            if stripped.startswith("```"):
                out.append("```")
                fence = None
            else:
                out.append(line[min(indent, fence):].replace("\\", "\\\\"))
            continue
        if stripped.startswith("```"):
            fence = indent
            out.append("```")
            continue
        if re.fullmatch(r"!\[[^\]]*\]\([^)]*\)", stripped.strip()):
            continue  # an image (a screenshot) has no place in a man page
        if stripped.startswith("|"):
            row = cells(stripped)
            if header is None:
                header = row
            elif not all(re.fullmatch(r":?-+:?", c) for c in row):
                rest = "; ".join(inline(c) for c in row[1:] if c)
                out.append(f"- {inline(row[0])}" + (f": {rest}" if rest else ""))
            continue
        header = None
        heading = re.match(r"(#+) (.*)", line)
        if heading:
            level, title = len(heading.group(1)), heading.group(2).strip()
            out.append(f"# {inline(title).upper()}" if level <= 2 else f"## {inline(title)}")
            items = []
            continue
        # Lists: scdoc nests with tabs and continues an item with its indentation plus two
        # spaces; an indented paragraph after a blank line becomes a plain paragraph.
        marker = re.match(r"(\d+\. |- )(.*)", stripped)
        if marker:
            while items and items[-1] >= indent:
                items.pop()
            bullet = ". " if marker.group(1)[0].isdigit() else "- "
            out.append("\t" * len(items) + bullet + inline(marker.group(2)))
            items.append(indent)
        elif not stripped:
            items = []
            out.append("")
        elif items and indent > 0:
            out.append("\t" * (len(items) - 1) + "  " + inline(stripped))
        else:
            items = []
            out.append(inline(stripped))
    if fence is not None:
        sys.exit("md2scdoc: a ``` block is not closed")
    return out


def section(path, heading):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if heading is None:
        return [l for l in lines if not re.match(r"# ", l)]
    try:
        start = lines.index(f"## {heading}")
    except ValueError:
        sys.exit(f"md2scdoc: {path} has no '## {heading}' section")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    return lines[start:end]


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    out_path, name, sec, summary, see_also = sys.argv[1:6]
    body = []
    for source in sys.argv[6:]:
        path, _, heading = source.partition("#")
        body += section(path, heading or None) + [""]
    page = [f"{name}({sec})", "", "# NAME", "", f"{escape(name)} - {escape(summary)}", ""]
    converted = convert(body)
    if not converted or not converted[0].startswith("# "):
        page += ["# DESCRIPTION", ""]
    page += converted
    page += ["# SEE ALSO", "", escape(see_also), ""]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(page))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)


main()
