"""A fresh database with cerberus's schema, for benchmarks that fill it with SQL."""
import glob
import os
import sqlite3

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def create(path):
    """Applies schema/sql/*.sql in order, as `cerberus run` would, and returns the connection."""
    con = sqlite3.connect(path)
    for sql in sorted(glob.glob(os.path.join(ROOT, "schema", "sql", "*.sql"))):
        con.executescript(open(sql).read())
        con.execute(f"PRAGMA user_version = {int(os.path.basename(sql).split('_')[0])}")
    return con
