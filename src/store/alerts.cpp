#include <optional>
#include <string>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

using detail::Binder;
using detail::Query;
using detail::Row;

namespace detail {

namespace {

// The changes that only touch the firing row of (rule, unit): `set` is the SET clause, whose
// parameters are ?3 and on, bound to `values`.
template <typename... Values>
int updateFiring(sqlite3* db, const char* set, const AlertWrite& change, const Values&... values) {
    const std::string sql = std::string("UPDATE alerts SET ") + set +
                            " WHERE rule = ?1 AND unit = ?2 AND state = 'firing'";
    return runOnce(db, sql, change.rule, change.unit, values...);
}

int writeAlertRow(sqlite3* db, const AlertWrite& change) {
    switch (change.kind) {
    case AlertWrite::Kind::Repeat:
        return updateFiring(db, "count = ?3, last_notified_usec = ?4", change, change.count,
                            change.at_usec);
    case AlertWrite::Kind::Resolve:
        return updateFiring(db, "state = 'resolved', resolved_usec = ?3, count = ?4", change,
                            change.at_usec, change.count);
    case AlertWrite::Kind::Count: return updateFiring(db, "count = ?3", change, change.count);
    case AlertWrite::Kind::Unsilence:
        return updateFiring(db, "silenced = 0, last_notified_usec = ?3", change, change.at_usec);
    case AlertWrite::Kind::Fire: break;
    }
    // One firing row per (rule, unit): a fire for an alert already firing refreshes it.
    return runOnce(db,
                   "INSERT INTO alerts (rule, unit, host, dedup_key, state, severity, count, "
                   "started_usec, last_notified_usec, silenced) SELECT ?1, ?2, ?3, ?4, 'firing', "
                   "?5, ?6, ?7, ?8, ?9 WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE rule = ?1 "
                   "AND unit = ?2 AND state = 'firing')",
                   change.rule, change.unit, change.host,
                   change.host + "/" + change.rule + "/" + change.unit, change.severity,
                   change.count, change.started_usec, change.at_usec, change.silenced);
}

}  // namespace

int writeAlert(sqlite3* db, const AlertWrite& change) {
    const int rc = writeAlertRow(db, change);
    if (rc != SQLITE_OK || change.notifications.empty()) return rc;
    // The newest row of (rule, unit) is the one just fired, repeated or resolved.
    Statement stmt;
    if (const int prc = prepare(db,
                                "INSERT INTO notifications (alert_id, receiver, action, payload, "
                                "next_attempt_usec, created_usec) SELECT id, ?3, ?4, ?5, ?6, ?6 "
                                "FROM alerts WHERE rule = ?1 AND unit = ?2 ORDER BY id DESC "
                                "LIMIT 1",
                                stmt);
        prc != SQLITE_OK)
        return prc;
    for (const auto& row : change.notifications) {
        Binder bind(stmt.get());
        bind.text(change.rule)
            .text(change.unit)
            .text(row.receiver)
            .text(row.action)
            .text(row.payload)
            .int64(change.at_usec);
        if (bind.rc() != SQLITE_OK) return bind.rc();
        if (const int irc = run(stmt.get()); irc != SQLITE_OK) return irc;
    }
    return SQLITE_OK;
}

}  // namespace detail

namespace {

StoredAlert readAlert(Row& row) {
    StoredAlert a;
    row.into(a.id, a.rule, a.unit, a.host, a.dedup_key, a.state, a.severity, a.count,
             a.started_usec, a.resolved_usec, a.last_notified_usec, a.silenced);
    return a;
}

Silence readSilence(Row& row) {
    Silence s;
    row.into(s.id, s.unit_glob, s.rule, s.starts_usec, s.ends_usec, s.comment);
    return s;
}

}  // namespace

Result<std::vector<StoredAlert>> tryQueryAlerts(Database& db, const std::string& state, int limit) {
    std::string sql =
        "SELECT id, rule, unit, host, dedup_key, state, severity, count, started_usec, "
        "resolved_usec, last_notified_usec, silenced FROM alerts";
    if (!state.empty()) sql += " WHERE state = ?";
    sql += " ORDER BY started_usec DESC, id DESC LIMIT ?";
    Query select(db, sql, "read the alerts");
    if (!state.empty()) select.bind().text(state);
    select.bind().int64(limit);
    return select.all(readAlert);
}

std::vector<StoredAlert> queryAlerts(Database& db, const std::string& state, int limit) {
    return tryQueryAlerts(db, state, limit).orThrow();
}

std::int64_t addSilence(Database& db, const Silence& silence) {
    const auto insert = detail::prepareOrThrow(
        db.handle(),
        "INSERT INTO silences (unit_glob, rule, starts_usec, ends_usec, comment) "
        "VALUES (?, NULLIF(?, ''), ?, ?, ?)");
    Binder bind(insert.get());
    bind.text(silence.unit_glob)
        .text(silence.rule)
        .int64(silence.starts_usec)
        .int64(silence.ends_usec)
        .text(silence.comment);
    if (bind.rc() != SQLITE_OK || sqlite3_step(insert.get()) != SQLITE_DONE)
        detail::fail(db, "add the silence");
    return sqlite3_last_insert_rowid(db.handle());
}

Result<std::vector<Silence>> listSilences(Database& db, bool active_only, core::Usec now_usec) {
    std::string sql =
        "SELECT id, unit_glob, coalesce(rule, ''), starts_usec, ends_usec, comment FROM silences";
    if (active_only) sql += " WHERE starts_usec <= ?1 AND ends_usec > ?1";
    sql += " ORDER BY id DESC";
    Query select(db, sql, "read the silences");
    if (active_only) select.bind().int64(now_usec);
    return select.all(readSilence);
}

bool expireSilence(Database& db, std::int64_t id, core::Usec now_usec) {
    const auto update = detail::prepareOrThrow(
        db.handle(), "UPDATE silences SET ends_usec = ?1 WHERE id = ?2 AND ends_usec > ?1");
    Binder bind(update.get());
    bind.int64(now_usec).int64(id);
    if (bind.rc() != SQLITE_OK || sqlite3_step(update.get()) != SQLITE_DONE)
        detail::fail(db, "expire the silence");
    return sqlite3_changes(db.handle()) > 0;
}

}  // namespace cerberus::store
