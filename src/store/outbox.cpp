#include <string>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

using detail::Statement;

namespace detail {

int writeOutboxUpdate(sqlite3* db, const OutboxUpdate& update) {
    return runOnce(db,
                   "UPDATE notifications SET status = ?, attempts = ?, next_attempt_usec = ?, "
                   "last_error = ?, sent_usec = ? WHERE id = ?",
                   [&update](Binder& bind) {
                       bind.text(update.status)
                           .int64(update.attempts)
                           .int64(update.next_attempt_usec)
                           .text(update.last_error)
                           .optionalInt(update.sent_usec)
                           .int64(update.id);
                   });
}

}  // namespace detail

namespace {

constexpr std::string_view PENDING_COLUMNS =
    "n.id, n.alert_id, n.receiver, n.action, n.payload, n.attempts, n.next_attempt_usec, "
    "n.created_usec";

std::vector<PendingNotification> readPending(Database& db, const std::string& sql,
                                             std::optional<std::int64_t> after_id,
                                             const char* what) {
    Statement select(db.handle(), sql);
    detail::Binder bind(select.get());
    if (after_id) bind.int64(*after_id);
    std::vector<PendingNotification> out;
    int rc = bind.rc() == SQLITE_OK ? SQLITE_ROW : bind.rc();
    while (rc == SQLITE_ROW && (rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        PendingNotification n;
        n.id = sqlite3_column_int64(select.get(), 0);
        n.alert_id = sqlite3_column_int64(select.get(), 1);
        n.receiver = detail::columnText(select.get(), 2);
        n.action = detail::columnText(select.get(), 3);
        n.payload = detail::columnText(select.get(), 4);
        n.attempts = sqlite3_column_int64(select.get(), 5);
        n.next_attempt_usec = sqlite3_column_int64(select.get(), 6);
        n.created_usec = sqlite3_column_int64(select.get(), 7);
        out.push_back(std::move(n));
    }
    if (rc != SQLITE_DONE) detail::fail(db, what);
    return out;
}

}  // namespace

std::vector<PendingNotification> loadPendingNotifications(Database& db, std::int64_t after_id) {
    return readPending(db,
                       "SELECT " + std::string(PENDING_COLUMNS) +
                           " FROM notifications n WHERE n.status = 'pending' AND n.id > ? "
                           "ORDER BY n.id",
                       after_id, "read the pending notifications");
}

std::vector<PendingNotification> firingTriggers(Database& db) {
    return readPending(db,
                       "SELECT " + std::string(PENDING_COLUMNS) +
                           " FROM notifications n JOIN alerts a ON a.id = n.alert_id"
                           " WHERE a.state = 'firing' AND a.silenced = 0 AND n.action = 'trigger'"
                           " AND n.id = (SELECT max(m.id) FROM notifications m WHERE"
                           " m.alert_id = n.alert_id AND m.receiver = n.receiver AND"
                           " m.action = 'trigger') ORDER BY n.id",
                       std::nullopt, "read the firing alerts' notifications");
}

std::map<std::string, std::int64_t> countNotifications(Database& db) {
    Statement select(db.handle(), "SELECT status, count(*) FROM notifications GROUP BY status");
    std::map<std::string, std::int64_t> out;
    int rc = SQLITE_ROW;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(select.get())) == SQLITE_ROW)
        out[detail::columnText(select.get(), 0)] = sqlite3_column_int64(select.get(), 1);
    if (rc != SQLITE_DONE) detail::fail(db, "count the notifications");
    return out;
}

}  // namespace cerberus::store
