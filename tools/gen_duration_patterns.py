#!/usr/bin/env python3
"""Writes the duration patterns of schema/rules.schema.json's $defs from the bounds cerberus
checks (src/rules/rules.hpp), so that the schema reads a duration as parseDuration does.

    tools/gen_duration_patterns.py           rewrite the patterns in the schema
    tools/gen_duration_patterns.py --check   exit 1 when the schema differs from this output

A duration is a sum of parts, each a number and a unit (systemd.time(7)). parseDuration
keeps 18 digits of a fraction and cuts each part to the microsecond, so a part reaches
`bound` microseconds exactly when its number, cut to 18 digits, is at least bound/scale:
when the number is at least that quotient rounded up to 18 digits. at_least() writes a
regular expression for "a decimal number at least this one" digit by digit, which makes
every bound on one part exact, fractions of minutes and hours included.

A bound on a sum is not regular in any readable way, so the schema reads sums as follows:
- non-zero: exact (a sum is non-zero when one part is);
- a lower bound: one part must reach it ("500ms 500ms" is refused, though it is 1s);
- timeout's upper bound: refused when one part passes 5min, or reaches it while another
  part is non-zero ("5min 1s"); other sums past 5min ("4min 90s") pass the schema.
"""
import json
import os
import re
import sys
from fractions import Fraction

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schema",
                      "rules.schema.json")

USEC_PER_SEC = 1_000_000
USEC_PER_MIN = 60 * USEC_PER_SEC
FRACTION_DIGITS = 18  # parseDuration drops the digits past these

# Each unit's spellings (longest first) and its length in microseconds: src/core/time.cpp.
UNITS = [
    (["usec", "us"], 1),
    (["msec", "ms"], 1_000),
    (["seconds", "second", "sec", "s"], USEC_PER_SEC),
    (["minutes", "minute", "min", "m"], USEC_PER_MIN),
    (["hours", "hour", "hr", "h"], 60 * USEC_PER_MIN),
    (["days", "day", "d"], 24 * 60 * USEC_PER_MIN),
    (["weeks", "week", "w"], 7 * 24 * 60 * USEC_PER_MIN),
]

# The bounds of src/rules/rules.hpp.
TIMEOUT_MIN_USEC = 100_000
TIMEOUT_MAX_USEC = 5 * USEC_PER_MIN
AT_LEAST_1S_USEC = USEC_PER_SEC  # repeat_every, give_up_after, resend_every

NUMBER = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
BLANK = r"[ \t]*"
END = r"(?![\s\S])"  # "$" would also match before a final newline


def spellings(names):
    return "(?:" + "|".join(names) + ")"


ANY_UNIT = spellings([name for names, _ in UNITS for name in names])
PART = NUMBER + BLANK + ANY_UNIT + BLANK


def integer_above(digits):
    """A whole number (leading zeros allowed) above `digits`."""
    n = len(digits)
    longer = f"0*[1-9][0-9]{{{n},}}" if digits != "0" else "0*[1-9][0-9]*"
    same_length = []
    if digits != "0":
        for i, d in enumerate(digits):
            if d != "9":
                rest = n - i - 1
                tail = f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]" if rest == 1 else ""
                same_length.append(f"0*{digits[:i]}[{int(d) + 1}-9]{tail}")
    return "|".join([longer] + same_length)


def fraction_at_least(digits):
    """The digits after a decimal point, read as a fraction at least 0.`digits`."""
    options = []
    for i, d in enumerate(digits):
        if d != "9":
            options.append(f"{digits[:i]}[{int(d) + 1}-9][0-9]*")
    options.append(f"{digits}[0-9]*")
    return "(?:" + "|".join(options) + ")"


def at_least(value):
    """A number written as NUMBER is, whose value is at least `value` (a Fraction with at
    most FRACTION_DIGITS digits after the point)."""
    whole = value.numerator // value.denominator
    rest = value - whole
    frac = ""
    while rest:
        rest *= 10
        frac += str(rest.numerator // rest.denominator)
        rest -= rest.numerator // rest.denominator
    assert len(frac) <= FRACTION_DIGITS
    equal = f"0*{whole}" if whole else "0*"
    if not frac:
        if whole == 0:
            return NUMBER
        return f"(?:(?:{integer_above(str(whole))}|{equal})(?:\\.[0-9]+)?)"
    return (f"(?:(?:{integer_above(str(whole))})(?:\\.[0-9]+)?"
            f"|{equal}\\.{fraction_at_least(frac)})")


def ceil_digits(value):
    """`value` rounded up to FRACTION_DIGITS digits after the point."""
    scale = 10**FRACTION_DIGITS
    return Fraction(-(-value.numerator * scale // value.denominator), scale)


def part_at_least(usec):
    """One part worth at least `usec` microseconds once parseDuration has read it."""
    options = [at_least(ceil_digits(Fraction(usec, scale))) + BLANK + spellings(names)
               for names, scale in UNITS]
    return "(?:" + "|".join(options) + ")"


def sum_with(*parts):
    """A whole duration holding these parts in this order, among any others."""
    middle = (BLANK + f"(?:{PART})*").join(parts)
    return f"^{BLANK}(?:{PART})*{middle}{BLANK}(?:{PART})*{END}"


def patterns():
    """The schema's $defs keys to their generated values."""
    non_zero = part_at_least(1)
    at_5min = part_at_least(TIMEOUT_MAX_USEC)
    past_5min = part_at_least(TIMEOUT_MAX_USEC + 1)
    return {
        ("duration", "pattern"): f"^{BLANK}(?:{PART})+{END}",
        ("nonzero_duration", "pattern"): sum_with(non_zero),
        ("duration_1s", "pattern"): sum_with(part_at_least(AT_LEAST_1S_USEC)),
        ("timeout", "pattern"): sum_with(part_at_least(TIMEOUT_MIN_USEC)),
        ("timeout", "not"): {"anyOf": [{"pattern": sum_with(past_5min)},
                                       {"pattern": sum_with(at_5min, non_zero)},
                                       {"pattern": sum_with(non_zero, at_5min)}]},
    }


def rewritten(text):
    """The schema's text with each generated value in place, the rest as it was."""
    for (name, key), value in patterns().items():
        # A $defs entry starts with its name at 4 spaces; its keys sit at 6.
        block = re.search(rf'^    "{re.escape(name)}": {{\n(?:      .*\n)*?    }}',
                          text, re.M)
        if not block:
            sys.exit(f"{SCHEMA}: no $defs entry {name!r}")
        line = re.compile(rf'^      "{key}": .*?(,?)$', re.M)
        found = line.search(text, block.start(), block.end())
        if not found:
            sys.exit(f"{SCHEMA}: $defs/{name} has no {key!r} line")
        new = f'      "{key}": {json.dumps(value)}{found.group(1)}'
        text = text[:found.start()] + new + text[found.end():]
    return text


def main():
    with open(SCHEMA, encoding="utf-8") as f:
        text = f.read()
    new = rewritten(text)
    if sys.argv[1:] == ["--check"]:
        if new != text:
            sys.exit(f"{SCHEMA}: its duration patterns differ from "
                     "tools/gen_duration_patterns.py's; run it and commit the result")
        return
    if sys.argv[1:]:
        sys.exit(__doc__.split("\n\n")[1])
    with open(SCHEMA, "w", encoding="utf-8") as f:
        f.write(new)


if __name__ == "__main__":
    main()
