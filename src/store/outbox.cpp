#include <string>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

namespace detail {

int writeOutboxUpdate(sqlite3* db, const OutboxUpdate& update) {
    return runOnce(db,
                   "UPDATE notifications SET status = ?, attempts = ?, next_attempt_usec = ?, "
                   "last_error = ?, sent_usec = ? WHERE id = ?",
                   update.status, update.attempts, update.next_attempt_usec, update.last_error,
                   update.sent_usec, update.id);
}

}  // namespace detail

namespace {

constexpr std::string_view PENDING_COLUMNS =
    "n.id, n.alert_id, n.receiver, n.action, n.payload, n.attempts, n.next_attempt_usec, "
    "n.created_usec";

PendingNotification readPending(detail::Row& row) {
    PendingNotification n;
    row.into(n.id, n.alert_id, n.receiver, n.action, n.payload, n.attempts, n.next_attempt_usec,
             n.created_usec);
    return n;
}

}  // namespace

Result<std::vector<PendingNotification>> loadPendingNotifications(Database& db,
                                                                  std::int64_t after_id) {
    detail::Query select(db,
                         "SELECT " + std::string(PENDING_COLUMNS) +
                             " FROM notifications n WHERE n.status = 'pending' AND n.id > ? "
                             "ORDER BY n.id",
                         "read the pending notifications");
    select.bind().int64(after_id);
    return select.all(readPending);
}

std::vector<PendingNotification> firingTriggers(Database& db) {
    detail::Query select(db,
                         "SELECT " + std::string(PENDING_COLUMNS) +
                             " FROM notifications n JOIN alerts a ON a.id = n.alert_id"
                             " WHERE a.state = 'firing' AND a.silenced = 0 AND n.action = 'trigger'"
                             " AND n.id = (SELECT max(m.id) FROM notifications m WHERE"
                             " m.alert_id = n.alert_id AND m.receiver = n.receiver AND"
                             " m.action = 'trigger') ORDER BY n.id",
                         "read the firing alerts' notifications");
    return select.all(readPending).orThrow();
}

Result<std::map<std::string, std::int64_t>> countNotifications(Database& db) {
    detail::Query select(db, "SELECT status, count(*) FROM notifications GROUP BY status",
                         "count the notifications");
    std::map<std::string, std::int64_t> out;
    const auto done = select.each([&out](detail::Row& row) {
        std::string status = row.text();
        out[std::move(status)] = row.int64();
        return true;
    });
    if (!done.ok()) return Failure{done.error()};
    return out;
}

}  // namespace cerberus::store
