-- Questions operators ask of cerberus's history, one statement each. Paste one into
--   sqlite3 -readonly -header -column /var/lib/cerberus/cerberus.db
-- Times are UTC; ts_usec is microseconds since the Unix epoch.

-- name: restarts-last-hour
-- Automatic restarts per unit in the last hour, busiest first.
SELECT unit, count(*) AS restarts, max(time) AS last_restart
FROM history
WHERE event = 'restart'
  AND ts_usec >= strftime('%s', 'now') * 1000000 - 3600 * 1000000
GROUP BY unit
ORDER BY restarts DESC, unit;

-- name: last-exit
-- How demo-crashloop.service last ended: result, exit code and status, and when.
SELECT event, result, exit_code, exit_status, n_restarts, time, invocation_id
FROM history
WHERE unit = 'demo-crashloop.service' AND exit_code != ''
ORDER BY ts_usec DESC, id DESC
LIMIT 1;

-- name: gave-up-last-day
-- Units the manager stopped restarting (start limit hit) in the last 24 hours.
SELECT unit, count(*) AS times, max(time) AS last_gave_up
FROM history
WHERE event = 'give_up'
  AND ts_usec >= strftime('%s', 'now') * 1000000 - 86400 * 1000000
GROUP BY unit
ORDER BY last_gave_up DESC, unit;

-- name: crashes-today
-- Crashes per unit and cause since midnight UTC (result, and how the main process ended).
SELECT unit, result, exit_code, exit_status, count(*) AS crashes, max(time) AS last_crash
FROM history
WHERE event = 'crash'
  AND ts_usec >= strftime('%s', 'now', 'start of day') * 1000000
GROUP BY unit, result, exit_code, exit_status
ORDER BY unit, crashes DESC, exit_status;

-- name: crash-looping
-- Units crash-looping right now: at least 3 crashes in the last 5 minutes.
SELECT unit, count(*) AS crashes, min(time) AS first_crash, max(time) AS last_crash
FROM history
WHERE event = 'crash'
  AND ts_usec >= strftime('%s', 'now') * 1000000 - 300 * 1000000
GROUP BY unit
HAVING count(*) >= 3
ORDER BY crashes DESC, unit;
