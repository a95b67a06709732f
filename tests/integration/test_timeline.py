"""`cerberus history --timeline` in a real terminal: tmux runs it in panes 60 and 120 columns
wide; each pane shows the span's ends, one line per unit at the terminal's width (the
crash loop in crash blocks, the calm unit up throughout), and the legend, in colour. Piped,
the same command prints no colour, at $COLUMNS or else 80 columns."""
import os
import re
import shutil
import subprocess
import time

from harness import (CERBERUS, Cerberus, UserManager, at_exit, check, crashloop_unit, db_rows,
                     fail, require_root, tempdir, wait_for)

ESC = re.compile(r"\x1b\[[0-9;]*m")
UNITS = ("tl-calm.service", "tl-loop.service")  # in the order the timeline lists them


def width_of(line):
    return len(ESC.sub("", line))


def tmux_run(width, height, command):
    """Runs `command` in a new tmux pane of width x height; returns its screen, plain and
    with colour sequences, once it has printed everything."""
    if not shutil.which("tmux"):
        fail("tmux is not installed (Debian package 'tmux'; make deps installs it)")
    socket = f"cerberus-tl-{os.getpid()}-{width}"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color")
    tmux = ["tmux", "-u", "-L", socket, "-f", "/dev/null"]
    at_exit(lambda: subprocess.run(tmux + ["kill-server"], env=env, capture_output=True))
    script = f"{command}; echo __DONE__; exec sleep 120"
    out = subprocess.run(tmux + ["new-session", "-d", "-x", str(width), "-y", str(height),
                                 "sh", "-c", script], env=env, capture_output=True, text=True)
    check(out.returncode == 0, f"tmux new-session failed: {out.stderr}")

    def capture(*flags):
        return subprocess.run(tmux + ["capture-pane", "-p", *flags], env=env,
                              capture_output=True, text=True).stdout

    deadline = time.monotonic() + 20
    while "__DONE__" not in capture():
        if time.monotonic() > deadline:
            fail(f"the timeline did not finish in the {width}-column pane:\n{capture()}")
        time.sleep(0.05)
    plain, colour = capture(), capture("-e")
    subprocess.run(tmux + ["kill-server"], env=env, capture_output=True)
    return plain, colour


def check_screen(width, plain, colour):
    lines = [line for line in plain.split("\n")[:plain.split("\n").index("__DONE__")]]
    check(len(lines) == 2 + len(UNITS), f"{width} columns: expected an axis, {len(UNITS)} unit "
                                        f"lines and a legend:\n{plain}")
    axis, units, legend = lines[0], lines[1:-1], lines[-1]
    check(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})? ([+-]\d\d:\d\d|UTC)", axis),
          f"{width} columns: the axis does not show the span's start:\n{plain}")
    for unit, line in zip(UNITS, units):
        label = unit if width >= 80 else unit[:len(line.split(" ")[0])]
        check(line.startswith(label.rstrip("…")),
              f"{width} columns: the line for {unit} does not start with its name: {line!r}")
        # The width is used and respected: the last column stays free, nothing wraps.
        check(width_of(line) == width - 1,
              f"{width} columns: the line for {unit} is {width_of(line)} wide: {line!r}")
    cells = {unit: line[line.index(" ", len(line) - width_of(line) + 1):] for unit, line in
             zip(UNITS, units)}
    check("█" in cells["tl-loop.service"], f"the crash loop shows no crash: {units}")
    check("█" not in cells["tl-calm.service"] and "▒" not in cells["tl-calm.service"] and
          "▁" in cells["tl-calm.service"], f"the calm unit shows more than up time: {units}")
    for word in ("█ crash", "▒ restart", "▁ up", "· down"):
        check(word in legend, f"{width} columns: the legend lacks '{word}': {legend!r}")
    check(width_of(legend) < width, f"{width} columns: the legend wraps: {legend!r}")
    loop_line = [line for line in colour.split("\n") if ESC.sub("", line).startswith("tl-loop")]
    check(loop_line and "\x1b[31m" in loop_line[0],
          f"{width} columns: no colour on a terminal: {colour!r}")
    return len(cells["tl-loop.service"])


require_root()
um = UserManager("timeline")
work = tempdir("timeline")
db = os.path.join(work, "history.db")
um.add_units({"tl-loop.service": crashloop_unit(exit_status=3, burst=4),
              "tl-calm.service": "[Service]\nExecStart=/bin/sleep infinity\n"})
cerberus = Cerberus(db, um.bus).start()
um.start(*UNITS)
wait_for(lambda: db_rows(db, "SELECT count(*) FROM transitions WHERE unit = 'tl-loop.service' "
                             "AND event = 'give_up'")[0][0] == 1, 30, "tl-loop.service to give up")
check(cerberus.stop() == 0, f"cerberus did not exit 0: {cerberus.output()}")

command = f"{CERBERUS} history --db {db} --timeline --unit 'tl-*'"
columns = {}
for width in (60, 120):
    plain, colour = tmux_run(width, 12, command)
    print(f"--- {width} columns:\n{plain.split('__DONE__')[0]}")
    columns[width] = check_screen(width, plain, colour)
check(columns[120] > columns[60] + 50,
      f"the wider terminal got no more columns: {columns}")

# Piped: no colour; the width from $COLUMNS, else 80.
env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
for value, expected in ((None, 80), ("50", 50)):
    if value:
        env["COLUMNS"] = value
    out = subprocess.run([CERBERUS, "history", "--db", db, "--timeline", "--unit", "tl-*"],
                         capture_output=True, text=True, env=env)
    check(out.returncode == 0, f"history --timeline failed: {out.stderr}")
    check("\x1b" not in out.stdout, f"colour sequences in piped output: {out.stdout!r}")
    widths = [width_of(line) for line in out.stdout.splitlines()]
    check(max(widths) == expected - 1,
          f"piped with COLUMNS={value}: lines up to {max(widths)} wide, expected {expected - 1}")
print(f"ok: the timeline keeps to 60 and 120 columns in tmux ({columns}), and to $COLUMNS piped")
