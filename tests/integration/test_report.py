"""`cerberus report` of a real crash loop, looked at in a real browser: headless Chromium
renders the page from a file:// URL, and what it shows agrees with the database: one mark
per stored transition per unit and kind (aggregated marks counting theirs), an alert band
from each recorded fire to its resolve, the replayed alerts where `cerberus replay` puts
them, an exact time, exit status and InvocationID in each mark's title. The screenshot is
kept as an artifact (its path is printed) for a person to look at."""
import datetime
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser

from harness import (Cerberus, UserManager, check, crashloop_unit, db_rows, fail, fix,
                     require_root, run_cli, tempdir, wait_for)

ARTIFACTS = os.environ.get("CERBERUS_ARTIFACTS") or tempdir("report-artifacts")
UNITS = ("report-loop.service", "report-killed.service", "report-calm.service")


class Elements(HTMLParser):
    """Every element of the rendered DOM with a data-kind, and the <title> text inside it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.items = []
        self.svg = None
        self.scripts = 0
        self.stack = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "svg" and "data-from-usec" in attrs:
            self.svg = attrs
        if tag == "title" and self.stack:
            self.stack[-1]["title"] = ""
        if "data-kind" in attrs:
            item = {"tag": tag, **attrs}
            self.items.append(item)
            self.stack.append(item)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1]["tag"] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and "title" in self.stack[-1]:
            self.stack[-1]["title"] += data


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return name
    fail("chromium is not installed (Debian package 'chromium'; make deps installs it)")


def browser(*args):
    profile = tempdir("chromium-profile")
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
                          *args], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"chromium {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    data = open(path, "rb").read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG")
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            check(depth == 8 and color in (2, 6) and interlace == 0, "unexpected PNG format")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, rows, channels


def count_color(path, rgb, tolerance=12):
    width, height, rows, channels = png_pixels(path)
    n = 0
    for line in rows:
        for x in range(width):
            px = line[x * channels:x * channels + 3]
            if all(abs(px[i] - rgb[i]) <= tolerance for i in range(3)):
                n += 1
    return n


require_root()
um = UserManager("report")
work = tempdir("report")
db = os.path.join(work, "history.db")
flag = os.path.join(work, "fixed")
os.chmod(work, 0o777)
rules = os.path.join(work, "rules.json")
with open(rules, "w") as f:
    json.dump({"receivers": {"log": {"type": "log"}},
               "rules": [{"name": "crashloop", "units": ["report-*.service"],
                          "when": {"event": "crash", "count": 3, "within": "1m"},
                          "resolve_when_up_for": "2s", "severity": "critical",
                          "notify": ["log"]}]}, f)
# The rules a reader might try instead: a crash loop after two crashes, resolved sooner.
what_if = os.path.join(work, "what-if.json")
with open(what_if, "w") as f:
    json.dump({"receivers": {"log": {"type": "log"}},
               "rules": [{"name": "crashloop", "units": ["report-*.service"],
                          "when": {"event": "crash", "count": 2, "within": "1m"},
                          "resolve_when_up_for": "1s", "severity": "warning",
                          "notify": ["log"]}]}, f)

um.add_units({
    # Exits 3 until fixed: fires, then resolves once the fixed run stays up 2 s.
    UNITS[0]: crashloop_unit(exit_status=3, run_for="0.3", restart_sec="200ms", fixed=flag),
    # Killed by SIGKILL until the start limit stops it: a signal crash loop and a give-up.
    UNITS[1]: "[Unit]\nStartLimitIntervalSec=60\nStartLimitBurst=5\n[Service]\n"
              "ExecStart=/bin/sh -c 'sleep 0.2; kill -9 $$$$'\nRestart=always\nRestartSec=200ms\n",
    UNITS[2]: "[Service]\nExecStart=/bin/sleep infinity\n",
})
cerberus = Cerberus(db, um.bus, ["--rules", rules]).start()
out = run_cli("silence", "--db", db, "add", "--unit", "report-killed*", "--for", "1h",
              "--comment", "known: being fixed")
check(out.returncode == 0, f"silence add failed: {out.stderr}")
um.start(*UNITS)


def alert_state(unit):
    rows = db_rows(db, "SELECT state FROM alerts WHERE unit = ?", (unit,))
    return rows[0][0] if rows else None


wait_for(lambda: alert_state(UNITS[0]) == "firing", 30, f"the crash loop alert of {UNITS[0]}")
wait_for(lambda: db_rows(db, "SELECT count(*) FROM transitions WHERE unit = ? AND "
                             "event = 'give_up'", (UNITS[1],))[0][0] == 1, 30,
         f"{UNITS[1]} to give up")
fix(flag)
wait_for(lambda: alert_state(UNITS[0]) == "resolved", 30, f"the resolve of {UNITS[0]}")
check(cerberus.stop() == 0, f"cerberus did not exit 0: {cerberus.output()}")

os.makedirs(ARTIFACTS, exist_ok=True)
page = os.path.join(ARTIFACTS, "report.html")
out = run_cli("report", "--db", db, "--unit", "report-*", "--rules", what_if, "-o", page)
check(out.returncode == 0, f"cerberus report failed ({out.returncode}): {out.stderr}")
check(out.stdout == "", f"cerberus report -o printed to stdout: {out.stdout[:200]}")
html = open(page, encoding="utf-8").read()
# Without -o the same page goes to stdout; a file that cannot be written is one sentence.
to_stdout = run_cli("report", "--db", db, "--unit", "report-*", "--rules", what_if)
check(to_stdout.returncode == 0 and to_stdout.stdout.startswith("<!DOCTYPE html>") and
      len(to_stdout.stdout) > len(html) // 2, f"cerberus report to stdout: {to_stdout.stderr}")
bad = run_cli("report", "--db", db, "-o", os.path.join(work, "no-such-dir", "r.html"))
check(bad.returncode == 1 and bad.stderr.count("\n") == 1 and "no-such-dir" in bad.stderr,
      f"an unwritable -o FILE: exit {bad.returncode}, {bad.stderr!r}")
# Self-contained: nothing to fetch, no script.
check(not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|@import|url\(\s*["']?(https?:|//)""",
                    html), "the report references something outside the file")
check(re.findall(r"https?://[^\s\"']+", html) == ["http://www.w3.org/2000/svg"],
      f"the report names a URL other than SVG's namespace: "
      f"{set(re.findall(r'https?://[^ ]+', html))}")

dom = browser("--dump-dom", f"file://{page}")
parsed = Elements()
parsed.feed(dom)
check(parsed.svg is not None, f"Chromium's DOM has no timeline: {dom[:500]}")
check(parsed.scripts == 0, "the rendered page holds a script")

# One mark per stored row, per unit and kind.
marks = Counter()
for item in parsed.items:
    if item["data-kind"] in ("run", "alert", "silence"):
        continue
    marks[(item["data-unit"], item["data-kind"])] += int(item.get("data-count", "1"))
stored = Counter({(u, e): n for u, e, n in db_rows(
    db, "SELECT unit, event, count(*) FROM transitions WHERE unit GLOB 'report-*' "
        "GROUP BY unit, event")})
check(marks == stored, f"marks in the DOM {dict(marks)} differ from the rows {dict(stored)}")
check(stored[(UNITS[0], "crash")] >= 3 and stored[(UNITS[1], "give_up")] == 1,
      f"the recording lacks the crash loop or the give-up: {dict(stored)}")
check(not any(u == UNITS[2] and k in ("crash", "restart") for u, k in marks),
      "the calm unit shows a crash or restart")

# The crashes are told apart by how they ended, and every single mark's title has the
# exact time, the exit status and the InvocationID of that run.
subs = Counter((i["data-unit"], i["data-sub"]) for i in parsed.items if i["data-kind"] == "crash")
check(set(subs) == {(UNITS[0], "exit-code"), (UNITS[1], "signal")},
      f"crashes drawn with the wrong result: {dict(subs)}")
crash_rows = db_rows(db, "SELECT unit, ts_usec, exit_code, exit_status, invocation_id FROM "
                         "transitions WHERE unit GLOB 'report-*' AND event = 'crash'")
titles = {(i["data-unit"], int(i["data-usec"])): i.get("title", "")
          for i in parsed.items if i["data-kind"] == "crash" and "data-usec" in i}
check(len(titles) == len(crash_rows), "crash marks were aggregated in a 20 s report")
for unit, ts, code, status, invocation in crash_rows:
    title = titles.get((unit, ts), "")
    check(f"{code} {status}" in title and invocation and invocation in title,
          f"the title of {unit}'s crash at {ts} lacks '{code} {status}' or {invocation}: {title!r}")

# Alert bands start and end at the recorded times, there and on the drawing's axis.
from_usec, to_usec = int(parsed.svg["data-from-usec"]), int(parsed.svg["data-to-usec"])
plot_x, plot_w = float(parsed.svg["data-plot-x"]), float(parsed.svg["data-plot-width"])


def x_of(usec):
    return plot_x + min(max((usec - from_usec) / (to_usec - from_usec), 0), 1) * plot_w


def bands(source):
    found = set()
    for i in parsed.items:
        if i["data-kind"] != "alert" or i["data-source"] != source:
            continue
        fired = int(i["data-fired-usec"])
        resolved = int(i["data-resolved-usec"]) if "data-resolved-usec" in i else None
        check(abs(float(i["x"]) - x_of(fired)) < 0.11,
              f"band of {i['data-unit']} starts at x={i['x']}, its fire is at {x_of(fired):.1f}")
        end = x_of(resolved if resolved is not None else to_usec)
        check(abs(float(i["x"]) + float(i["width"]) - max(end, x_of(fired) + 2)) < 0.2,
              f"band of {i['data-unit']} ends at {float(i['x']) + float(i['width'])}, not {end:.1f}")
        found.add((i["data-rule"], i["data-unit"], fired, resolved))
    return found


recorded = set(db_rows(db, "SELECT rule, unit, started_usec, resolved_usec FROM alerts"))
check(bands("recorded") == recorded,
      f"recorded alert bands {bands('recorded')} differ from the alerts table {recorded}")
check(any(u == UNITS[0] and r is not None for _, u, _, r in recorded) and
      any(u == UNITS[1] and r is None for _, u, _, r in recorded),
      f"expected the loop's alert resolved and the killed unit's still firing: {recorded}")
silenced = [i for i in parsed.items if i["data-kind"] == "alert" and "silenced" in i["class"]]
check([i["data-unit"] for i in silenced] == [UNITS[1]], "the silenced alert is not drawn so")
check({i["data-unit"] for i in parsed.items if i["data-kind"] == "silence"} == {UNITS[1]},
      "the silence is not drawn over the silenced unit's lane alone")

# The replay overlay is what `cerberus replay` says those rules would have done.
# Up to the report's end: its span ends just after the last thing recorded (here the resolve).
end = datetime.datetime.fromtimestamp(to_usec / 1e6, datetime.timezone.utc)
replayed = run_cli("replay", "--db", db, "--rules", what_if, "--json", "--until",
                   end.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
check(replayed.returncode == 0, f"cerberus replay failed: {replayed.stderr}")
replay = json.loads(replayed.stdout)
fires, expected = {}, set()
for change in replay["changes"]:
    if not change["unit"].startswith("report-"):
        continue
    key = (change["rule"], change["unit"])
    if change["change"] == "fire":
        fires[key] = change["at_usec"]
    elif change["change"] == "resolve":
        expected.add((*key, fires.pop(key), change["at_usec"]))
expected |= {(*key, at, None) for key, at in fires.items()}
check(bands("replay") == expected,
      f"replay bands {bands('replay')} differ from cerberus replay's changes {expected}")

# Summary: the units ranked by crashes, the alert with its time to resolve.
ranked = re.findall(r'<tr data-unit="([^"]+)"><td><a', dom)
counts = {u: stored[(u, "crash")] for u in UNITS}
check(ranked == sorted(UNITS, key=lambda u: (-counts[u], -stored[(u, "restart")], u)),
      f"units not ranked by crashes: {ranked}")

# The page as a person sees it.
shot = os.path.join(ARTIFACTS, "report.png")
if os.path.exists(shot):
    os.unlink(shot)
browser(f"--screenshot={shot}", "--window-size=1400,1000", f"file://{page}")
check(os.path.exists(shot), "chromium wrote no screenshot")
crash_red = count_color(shot, (0xd1, 0x24, 0x2f))
run_green = count_color(shot, (0x8f, 0xd1, 0x9e))
check(crash_red > 200 and run_green > 2000,
      f"the screenshot shows too little: {crash_red} crash-red, {run_green} run-green pixels")

print(f"ok: {sum(marks.values())} marks match the rows of {len(UNITS)} units, "
      f"{len(recorded)} recorded and {len(expected)} replayed alert bands at their times; "
      f"screenshot {shot}")
