"""schema/rules.schema.json says what `cerberus check` says. Every shipped rule file, every
example and every fixture under tests/fixtures/rules/ goes through both the parser
(`cerberus check`) and a JSON Schema validator (Debian's python3-jsonschema), and any
disagreement either way fails: a file the schema accepts and check refuses lets an editor
show green on rules that will not load; one it refuses and check accepts is a schema that
cries wolf.

The JSON layer is strict JSON as cerberus reads it: a key given twice in one object, a
number too large for a double and a byte order mark are refused before the schema.

tests/fixtures/rules/beyond-schema/ holds what JSON Schema cannot express: check refuses
each file, the schema accepts it, and this test pins both, so a schema that learns to see
one of them moves it to invalid/. The other way round, the schema is stricter in one place: a
lower bound must be reached by one part of a sum, so it refuses "500ms 500ms", which check
reads as 1s.

The bounded duration patterns are written by tools/gen_duration_patterns.py: the schema must
hold its output, and every bound is tried in every unit with the number that reaches it and
the one just under it (18 digits after the point, where parseDuration stops reading)."""
import glob
import json
import math
import os
import subprocess
import sys
from fractions import Fraction

from harness import CERBERUS, SOURCE_ROOT, check, fail, tempdir

try:
    import jsonschema
except ImportError:
    fail("python3-jsonschema is missing: apt-get install python3-jsonschema (make deps)")

SCHEMA_PATH = os.path.join(SOURCE_ROOT, "schema", "rules.schema.json")
FIXTURES = os.path.join(SOURCE_ROOT, "tests", "fixtures", "rules")
work = tempdir("schema")

# Why the schema accepts each file of beyond-schema/ that check refuses.
BEYOND_SCHEMA = {
    "notify-undefined-receiver.json": "a notify entry names a receiver of the merged set",
    "duplicate-rule-name.json": "rule names are unique across the merged set",
    "glob-reversed-range.json": "a reversed range such as [z-a] compares character codes",
    "secret-file-missing.json": "a secret file must exist on the machine that loads the rules",
    "count-written-as-float.json": "3.0 is an integer to JSON Schema, a float to cerberus",
    "timeout-sum-above-5m.json": "the schema bounds each part of a sum, check the total",
    "duration-past-64-bits.json": "a duration over 2^63 microseconds (292,000 years) overflows",
}


class StrictJsonError(ValueError):
    pass


def refuse_duplicates(pairs):
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise StrictJsonError(f"duplicate key {key!r}")
    return dict(pairs)


def finite(text):
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError(f"number overflow {text!r}")
    return value


def schema_errors(path, validator):
    """The schema's verdict on a file: [] when valid, else one string per error."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text, object_pairs_hook=refuse_duplicates, parse_float=finite)
    except (ValueError, StrictJsonError) as e:  # JSONDecodeError is a ValueError
        return [f"JSON: {e}"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '/'}: {e.message}"
            for e in validator.iter_errors(doc)]


def check_verdict(path):
    out = subprocess.run([CERBERUS, "check", "--rules", path], capture_output=True, text=True,
                         timeout=10)
    check(out.returncode in (0, 1), f"cerberus check {path}: exit {out.returncode}: {out.stderr}")
    check("unexpected error" not in out.stderr, f"cerberus check {path}: {out.stderr}")
    errors = [line for line in out.stderr.splitlines() if not line.startswith("cerberus: ")]
    # One fault per fixture, so that each one shows what it is named for.
    check(out.returncode == 0 or len(errors) == 1,
          f"cerberus check {path}: expected one error, got {out.stderr}")
    return out.returncode == 0, out.stderr.strip()


schema = json.load(open(SCHEMA_PATH))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)


def rule_files_under(top):
    for path in sorted(glob.glob(os.path.join(top, "**", "*.json"), recursive=True)):
        try:
            doc = json.load(open(path))
        except ValueError:
            continue
        # Only rule files: examples/ may hold other JSON.
        if isinstance(doc, dict) and ("rules" in doc or "receivers" in doc):
            yield path


valid = [os.path.join(SOURCE_ROOT, "rules", "default.json")]
valid += list(rule_files_under(os.path.join(SOURCE_ROOT, "examples")))
valid += sorted(glob.glob(os.path.join(FIXTURES, "valid", "*.json")))
invalid = sorted(glob.glob(os.path.join(FIXTURES, "invalid", "*.json")))
beyond = sorted(glob.glob(os.path.join(FIXTURES, "beyond-schema", "*.json")))

# The caps, written here rather than kept as large fixtures.
too_many_rules = os.path.join(work, "too-many-rules.json")
json.dump({"receivers": {"log": {"type": "log"}},
           "rules": [{"name": f"r{i}", "when": {"event": "crash"}, "notify": ["log"]}
                     for i in range(1001)]}, open(too_many_rules, "w"))
too_many_receivers = os.path.join(work, "too-many-receivers.json")
json.dump({"receivers": {f"r{i}": {"type": "log"} for i in range(101)}},
          open(too_many_receivers, "w"))
invalid += [too_many_rules, too_many_receivers]

# The patterns are the generator's, and each bound it writes is where check puts it.
sys.path.insert(0, os.path.join(SOURCE_ROOT, "tools"))
import gen_duration_patterns as gen  # noqa: E402

GENERATOR = os.path.join(SOURCE_ROOT, "tools", "gen_duration_patterns.py")
out = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True, text=True,
                     timeout=30)
check(out.returncode == 0, f"tools/gen_duration_patterns.py --check: {out.stderr}")


def decimal(value):
    whole, frac = divmod(value * 10**gen.FRACTION_DIGITS, 10**gen.FRACTION_DIGITS)
    digits = f"{int(frac):0{gen.FRACTION_DIGITS}d}".rstrip("0")
    return f"{int(whole)}.{digits}" if digits else str(int(whole))


def with_rule(**fields):
    return {"receivers": {"log": {"type": "log"}},
            "rules": [{"name": "x", "when": {"event": "crash", "count": 2, "within": "1h"},
                       "notify": ["log"], **fields}]}


def with_receiver(**fields):
    return {"receivers": {"log": {"type": "log"},
                          "ops": {"type": "slack", "url": {"env": "SLACK_URL"}, **fields}}}


# (where the value goes, the microseconds of the bound, whether reaching it is valid)
BOUNDS = [
    (lambda v: with_rule(when={"event": "crash", "count": 2, "within": v}), 1, True),
    (lambda v: with_rule(repeat_every=v), gen.AT_LEAST_1S_USEC, True),
    (lambda v: with_receiver(timeout=v), gen.TIMEOUT_MIN_USEC, True),
    (lambda v: with_receiver(timeout=v), gen.TIMEOUT_MAX_USEC + 1, False),
    (lambda v: with_receiver(timeout="5min " + v), 1, False),
]
near_bounds = {}  # path: whether check must accept it
for n, (place, usec, reaching_is_valid) in enumerate(BOUNDS):
    for names, scale in gen.UNITS:
        reach = gen.ceil_digits(Fraction(usec, scale))
        just_under = reach - Fraction(1, 10**gen.FRACTION_DIGITS)
        for i, value in enumerate([reach, just_under]):
            path = os.path.join(work, f"bound-{n}-{names[-1]}-{i}.json")
            json.dump(place(decimal(value) + names[(n + i) % len(names)]), open(path, "w"))
            near_bounds[path] = reaching_is_valid == (value == reach)

check(len(invalid) >= 43, f"only {len(invalid)} invalid rule files: {FIXTURES}/invalid")
check(sorted(map(os.path.basename, beyond)) == sorted(BEYOND_SCHEMA),
      f"beyond-schema/ and BEYOND_SCHEMA differ: {sorted(map(os.path.basename, beyond))}")

disagreements = []
for path in valid + invalid + beyond + list(near_bounds):
    name = os.path.relpath(path, SOURCE_ROOT) if path.startswith(SOURCE_ROOT) else path
    accepted, stderr = check_verdict(path)
    errors = schema_errors(path, validator)
    if path in valid:
        if not accepted:
            disagreements.append(f"{name}: cerberus check refuses a valid file: {stderr}")
        if errors:
            disagreements.append(f"{name}: the schema refuses a valid file: {errors}")
    elif path in near_bounds:
        if accepted != near_bounds[path]:
            disagreements.append(f"{name}: cerberus check puts the bound elsewhere: "
                                 f"{open(path).read()} {stderr}")
        if accepted and errors:
            disagreements.append(f"{name}: the schema refuses what check accepts: {errors}")
        if not accepted and not errors:
            disagreements.append(f"{name}: the schema accepts what check refuses: {stderr}")
    elif path in beyond:
        if accepted:
            disagreements.append(f"{name}: cerberus check accepts it")
        if errors:
            disagreements.append(f"{name}: the schema now refuses it ({errors}); move it to "
                                 "invalid/ and drop it from BEYOND_SCHEMA")
    else:
        if accepted:
            disagreements.append(f"{name}: cerberus check accepts an invalid file")
        if not errors:
            disagreements.append(f"{name}: the schema accepts what check refuses: {stderr}")
check(not disagreements,
      f"{len(disagreements)} disagreements between cerberus check and the schema:\n  " +
      "\n  ".join(disagreements))
print(f"ok: {len(valid)} valid, {len(invalid)} invalid, {len(beyond)} beyond-schema rule files "
      f"and {len(near_bounds)} durations at a bound judged alike by cerberus check and the "
      "schema")
