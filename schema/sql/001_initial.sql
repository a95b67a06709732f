-- cerberus schema 1. Public: people query these tables with sqlite3 (README.md, "History").
-- Times are microseconds: ts_usec since the Unix epoch (UTC), mono_usec CLOCK_MONOTONIC.

CREATE TABLE transitions (
    id            INTEGER PRIMARY KEY,
    ts_usec       INTEGER NOT NULL,
    mono_usec     INTEGER NOT NULL,
    unit          TEXT    NOT NULL,
    event         TEXT    NOT NULL CHECK (event IN ('start', 'stop', 'crash', 'restart', 'fail', 'give_up')),
    active_state  TEXT    NOT NULL DEFAULT '',
    sub_state     TEXT    NOT NULL DEFAULT '',
    result        TEXT    NOT NULL DEFAULT '',
    exit_code     TEXT    NOT NULL DEFAULT '',   -- exited, killed, dumped; '' when no run ended
    exit_status   INTEGER,                       -- exit code, or signal number when killed/dumped
    n_restarts    INTEGER,                       -- NRestarts after this transition (services)
    invocation_id TEXT    NOT NULL DEFAULT '',
    main_pid      INTEGER,
    source        TEXT    NOT NULL DEFAULT 'systemd' CHECK (source IN ('systemd', 'reconcile', 'emit', 'supervisor'))
);
CREATE INDEX transitions_unit_ts ON transitions (unit, ts_usec);
CREATE INDEX transitions_ts ON transitions (ts_usec);

-- The last facts cerberus knew about each unit, so that a restarted cerberus reconciles
-- what happened while it was not listening (restarts it did not see, runs that ended).
CREATE TABLE units (
    unit                 TEXT PRIMARY KEY,
    active_state         TEXT    NOT NULL DEFAULT '',
    sub_state            TEXT    NOT NULL DEFAULT '',
    result               TEXT    NOT NULL DEFAULT '',
    exec_main_code       INTEGER NOT NULL DEFAULT 0,
    exec_main_status     INTEGER NOT NULL DEFAULT 0,
    exec_main_start_mono INTEGER NOT NULL DEFAULT 0,
    exec_main_exit_mono  INTEGER NOT NULL DEFAULT 0,
    state_change_mono    INTEGER NOT NULL DEFAULT 0,
    n_restarts           INTEGER NOT NULL DEFAULT -1,
    invocation_id        TEXT    NOT NULL DEFAULT '',
    main_pid             INTEGER NOT NULL DEFAULT 0,
    reported_exit_mono   INTEGER NOT NULL DEFAULT 0,
    run_ended            INTEGER NOT NULL DEFAULT 0,
    in_restart_cycle     INTEGER NOT NULL DEFAULT 0,
    gave_up              INTEGER NOT NULL DEFAULT 0,
    updated_usec         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE alerts (
    id                 INTEGER PRIMARY KEY,
    rule               TEXT    NOT NULL,
    unit               TEXT    NOT NULL,
    host               TEXT    NOT NULL,
    dedup_key          TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
    severity           TEXT    NOT NULL,
    count              INTEGER NOT NULL,
    started_usec       INTEGER NOT NULL,
    resolved_usec      INTEGER,
    last_notified_usec INTEGER,
    silenced           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_state ON alerts (state, rule, unit);

CREATE TABLE notifications (
    id                INTEGER PRIMARY KEY,
    alert_id          INTEGER NOT NULL REFERENCES alerts (id),
    receiver          TEXT    NOT NULL,
    action            TEXT    NOT NULL,
    payload           TEXT    NOT NULL,
    status            TEXT    NOT NULL DEFAULT 'pending',
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_usec INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT    NOT NULL DEFAULT '',
    created_usec      INTEGER NOT NULL,
    sent_usec         INTEGER
);
CREATE INDEX notifications_pending ON notifications (status, next_attempt_usec);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY,
    unit_glob   TEXT    NOT NULL,
    rule        TEXT,
    starts_usec INTEGER NOT NULL,
    ends_usec   INTEGER NOT NULL,
    comment     TEXT    NOT NULL DEFAULT ''
);

-- Readable views for people: UTC times with milliseconds.
CREATE VIEW history AS
SELECT id,
       strftime('%Y-%m-%dT%H:%M:%f', ts_usec / 1000000.0, 'unixepoch') || 'Z' AS time,
       unit, event, active_state, sub_state, result, exit_code, exit_status, n_restarts,
       invocation_id, main_pid, source, ts_usec
FROM transitions;

CREATE VIEW firing AS
SELECT id, rule, unit, host, severity, count,
       strftime('%Y-%m-%dT%H:%M:%f', started_usec / 1000000.0, 'unixepoch') || 'Z' AS started,
       silenced, dedup_key
FROM alerts WHERE state = 'firing';
