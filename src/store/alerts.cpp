#include <optional>
#include <string>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

using detail::Statement;

namespace detail {

namespace {

// The changes that only touch the firing row of (rule, unit): `set` is the SET clause, whose
// parameters are `first` and, when given, `second`.
int updateFiring(sqlite3* db, const char* set, const AlertWrite& change, std::int64_t first,
                 std::optional<std::int64_t> second) {
    const std::string sql = std::string("UPDATE alerts SET ") + set +
                            " WHERE rule = ? AND unit = ? AND state = 'firing'";
    return runOnce(db, sql, [&](Binder& bind) {
        bind.int64(first);
        if (second) bind.int64(*second);
        bind.text(change.rule).text(change.unit);
    });
}

int writeAlertRow(sqlite3* db, const AlertWrite& change) {
    switch (change.kind) {
    case AlertWrite::Kind::Repeat:
        return updateFiring(db, "count = ?, last_notified_usec = ?", change, change.count,
                            change.at_usec);
    case AlertWrite::Kind::Resolve:
        return updateFiring(db, "state = 'resolved', resolved_usec = ?, count = ?", change,
                            change.at_usec, change.count);
    case AlertWrite::Kind::Count:
        return updateFiring(db, "count = ?", change, change.count, std::nullopt);
    case AlertWrite::Kind::Unsilence:
        return updateFiring(db, "silenced = 0, last_notified_usec = ?", change, change.at_usec,
                            std::nullopt);
    case AlertWrite::Kind::Fire: break;
    }
    // One firing row per (rule, unit): a fire for an alert already firing refreshes it.
    return runOnce(db,
                   "INSERT INTO alerts (rule, unit, host, dedup_key, state, severity, count, "
                   "started_usec, last_notified_usec, silenced) SELECT ?1, ?2, ?3, ?4, 'firing', "
                   "?5, ?6, ?7, ?8, ?9 WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE rule = ?1 "
                   "AND unit = ?2 AND state = 'firing')",
                   [&change](Binder& bind) {
                       bind.text(change.rule)
                           .text(change.unit)
                           .text(change.host)
                           .text(change.host + "/" + change.rule + "/" + change.unit)
                           .text(change.severity)
                           .int64(change.count)
                           .int64(change.started_usec)
                           .int64(change.at_usec)
                           .int64(change.silenced ? 1 : 0);
                   });
}

}  // namespace

int writeAlert(sqlite3* db, const AlertWrite& change) {
    const int rc = writeAlertRow(db, change);
    if (rc != SQLITE_OK || change.notifications.empty()) return rc;
    // The newest row of (rule, unit) is the one just fired, repeated or resolved.
    StatementPtr stmt;
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

std::vector<StoredAlert> queryAlerts(Database& db, const std::string& state, int limit) {
    std::string sql =
        "SELECT id, rule, unit, host, dedup_key, state, severity, count, started_usec, "
        "resolved_usec, last_notified_usec, silenced FROM alerts";
    if (!state.empty()) sql += " WHERE state = ?";
    sql += " ORDER BY started_usec DESC, id DESC LIMIT ?";
    Statement select(db.handle(), sql);
    detail::Binder bind(select.get());
    if (!state.empty()) bind.text(state);
    bind.int64(limit);
    std::vector<StoredAlert> out;
    int rc = bind.rc() == SQLITE_OK ? SQLITE_ROW : bind.rc();
    while (rc == SQLITE_ROW && (rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        StoredAlert a;
        a.id = sqlite3_column_int64(select.get(), 0);
        a.rule = detail::columnText(select.get(), 1);
        a.unit = detail::columnText(select.get(), 2);
        a.host = detail::columnText(select.get(), 3);
        a.dedup_key = detail::columnText(select.get(), 4);
        a.state = detail::columnText(select.get(), 5);
        a.severity = detail::columnText(select.get(), 6);
        a.count = sqlite3_column_int64(select.get(), 7);
        a.started_usec = sqlite3_column_int64(select.get(), 8);
        a.resolved_usec = detail::columnOptionalInt(select.get(), 9);
        a.last_notified_usec = detail::columnOptionalInt(select.get(), 10);
        a.silenced = sqlite3_column_int64(select.get(), 11) != 0;
        out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) detail::fail(db, "read the alerts");
    return out;
}

std::int64_t addSilence(Database& db, const Silence& silence) {
    Statement insert(db.handle(),
                     "INSERT INTO silences (unit_glob, rule, starts_usec, ends_usec, comment) "
                     "VALUES (?, NULLIF(?, ''), ?, ?, ?)");
    detail::Binder bind(insert.get());
    bind.text(silence.unit_glob)
        .text(silence.rule)
        .int64(silence.starts_usec)
        .int64(silence.ends_usec)
        .text(silence.comment);
    if (bind.rc() != SQLITE_OK || sqlite3_step(insert.get()) != SQLITE_DONE)
        detail::fail(db, "add the silence");
    return sqlite3_last_insert_rowid(db.handle());
}

std::vector<Silence> listSilences(Database& db, bool active_only, core::Usec now_usec) {
    std::string sql =
        "SELECT id, unit_glob, coalesce(rule, ''), starts_usec, ends_usec, comment FROM silences";
    if (active_only) sql += " WHERE starts_usec <= ?1 AND ends_usec > ?1";
    sql += " ORDER BY id DESC";
    Statement select(db.handle(), sql);
    detail::Binder bind(select.get());
    if (active_only) bind.int64(now_usec);
    std::vector<Silence> out;
    int rc = bind.rc() == SQLITE_OK ? SQLITE_ROW : bind.rc();
    while (rc == SQLITE_ROW && (rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        Silence s;
        s.id = sqlite3_column_int64(select.get(), 0);
        s.unit_glob = detail::columnText(select.get(), 1);
        s.rule = detail::columnText(select.get(), 2);
        s.starts_usec = sqlite3_column_int64(select.get(), 3);
        s.ends_usec = sqlite3_column_int64(select.get(), 4);
        s.comment = detail::columnText(select.get(), 5);
        out.push_back(std::move(s));
    }
    if (rc != SQLITE_DONE) detail::fail(db, "read the silences");
    return out;
}

bool expireSilence(Database& db, std::int64_t id, core::Usec now_usec) {
    Statement update(db.handle(),
                     "UPDATE silences SET ends_usec = ?1 WHERE id = ?2 AND ends_usec > ?1");
    detail::Binder bind(update.get());
    bind.int64(now_usec).int64(id);
    if (bind.rc() != SQLITE_OK || sqlite3_step(update.get()) != SQLITE_DONE)
        detail::fail(db, "expire the silence");
    return sqlite3_changes(db.handle()) > 0;
}

}  // namespace cerberus::store
