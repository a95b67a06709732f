-- cerberus schema 3. Which systemd manager the unit snapshots in `units` belong to, so
-- that a start after a reboot (or after the manager itself restarted) measures every unit
-- against a new manager's zero, not against counters of the previous one. One row.
CREATE TABLE manager (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    identity     TEXT    NOT NULL,   -- boot ID / the manager's start (CLOCK_MONOTONIC usec)
    updated_usec INTEGER NOT NULL    -- the last time the daemon was known to be watching
);

-- Rows inferred at reconcile (source 'reconcile') happened while nobody watched, at a time
-- not known: at the earliest here (when cerberus last watched), at the latest at ts_usec.
-- Rules count such a row only when that whole span fits their window. NULL: not known.
ALTER TABLE transitions ADD COLUMN unwatched_since_usec INTEGER;

-- A restart was counted and the end of the run it began is not stored yet: if the next
-- restart is found at a reconcile, that run ended unseen.
ALTER TABLE units ADD COLUMN awaiting_end INTEGER NOT NULL DEFAULT 0;
