"""The shipped Prometheus rules (examples/prometheus/cerberus.rules.yml) are valid for
`promtool check rules`, their unit tests (cerberus.rules.test.yml) pass under `promtool test
rules`, and every cerberus series they use is one the daemon exports (README's table)."""
import os
import re
import shutil
import subprocess

from harness import SOURCE_ROOT, check, fail

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:
    if os.environ.get("CI") == "true":
        fail("promtool is missing (Debian package prometheus); under CI=true the test must run")
    print("SKIP: promtool is missing; install the Debian package prometheus")
    raise SystemExit(77)

directory = os.path.join(SOURCE_ROOT, "examples", "prometheus")
rules = os.path.join(directory, "cerberus.rules.yml")
out = subprocess.run([PROMTOOL, "check", "rules", rules], capture_output=True, text=True)
check(out.returncode == 0 and "SUCCESS" in out.stdout,
      f"promtool check rules: {out.returncode} {out.stdout} {out.stderr}")
out = subprocess.run([PROMTOOL, "test", "rules", "cerberus.rules.test.yml"], cwd=directory,
                     capture_output=True, text=True)
check(out.returncode == 0 and "SUCCESS" in out.stdout,
      f"promtool test rules: {out.returncode} {out.stdout} {out.stderr}")

documented = set(re.findall(r"^\| `(cerberus_[a-z_]+)`",
                            open(os.path.join(SOURCE_ROOT, "README.md")).read(), re.M))
used = {name for name in re.findall(r"\b(cerberus_[a-z_]+)", open(rules).read())
        if not name.endswith("_")}  # not a prefix such as cerberus_unit_*
check(used and used <= documented, f"series used but not documented: {used - documented}")
print("ok")
