"""`--keep 30d` deletes older transitions, in batches, and keeps the recent ones."""
import os
import sqlite3
import time

from harness import Cerberus, UserManager, check, db_rows, require_root, tempdir, wait_for

require_root()
um = UserManager("retention")
db = os.path.join(tempdir("retention"), "history.db")
Cerberus(db, um.bus).start().stop()  # creates the database

now = int(time.time() * 1000000)
day = 86400 * 1000000
con = sqlite3.connect(db)
con.executemany("INSERT INTO transitions (ts_usec, mono_usec, unit, event) VALUES (?, 0, ?, ?)",
                [(now - 40 * day + i, "old.service", "crash") for i in range(5000)] +
                [(now - 29 * day, "recent.service", "crash"), (now - day, "recent.service", "start")])
con.commit()
con.close()

cerberus = Cerberus(db, um.bus, ["--keep", "30d"]).start()
wait_for(lambda: db_rows(db, "SELECT count(*) FROM transitions WHERE unit = 'old.service'")[0][0] == 0,
         20, "transitions older than 30 days to be deleted")
recent = db_rows(db, "SELECT count(*) FROM transitions WHERE unit = 'recent.service'")[0][0]
check(recent == 2, f"retention deleted recent transitions: {recent} of 2 left")
check(cerberus.stop() == 0, "cerberus did not exit 0 on SIGTERM")
print("ok")
