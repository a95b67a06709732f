#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

using detail::Statement;

namespace detail {

void fail(const Database& db, const std::string& what) {
    throw core::Error(core::ExitCode::Database, "cannot " + what + " in database '" + db.path() +
                                                    "': " + sqlite3_errmsg(db.handle()) +
                                                    "; check the file or pass --db");
}

int run(sqlite3_stmt* stmt) {
    const int rc = sqlite3_step(stmt);
    rewind(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

}  // namespace detail

namespace {

using detail::Binder;
using detail::columnOptionalInt;
using detail::columnText;

constexpr std::string_view INSERT_TRANSITION_SQL =
    "INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, sub_state, result,"
    " exit_code, exit_status, n_restarts, invocation_id, main_pid, source, unwatched_since_usec)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

// updated_usec is the commit's wall time, in whole milliseconds.
constexpr std::string_view UPSERT_UNIT_SQL =
    "INSERT INTO units (unit, active_state, sub_state, result, exec_main_code, exec_main_status,"
    " exec_main_start_mono, exec_main_exit_mono, state_change_mono, n_restarts, invocation_id,"
    " main_pid, reported_exit_mono, run_ended, in_restart_cycle, gave_up, awaiting_end,"
    " updated_usec)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
    " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000)"
    " ON CONFLICT (unit) DO UPDATE SET active_state = excluded.active_state,"
    " sub_state = excluded.sub_state, result = excluded.result,"
    " exec_main_code = excluded.exec_main_code, exec_main_status = excluded.exec_main_status,"
    " exec_main_start_mono = excluded.exec_main_start_mono,"
    " exec_main_exit_mono = excluded.exec_main_exit_mono,"
    " state_change_mono = excluded.state_change_mono, n_restarts = excluded.n_restarts,"
    " invocation_id = excluded.invocation_id, main_pid = excluded.main_pid,"
    " reported_exit_mono = excluded.reported_exit_mono, run_ended = excluded.run_ended,"
    " in_restart_cycle = excluded.in_restart_cycle, gave_up = excluded.gave_up,"
    " awaiting_end = excluded.awaiting_end,"
    " updated_usec = excluded.updated_usec";

constexpr std::string_view UNIT_COLUMNS =
    "unit, active_state, sub_state, result, exec_main_code, exec_main_status,"
    " exec_main_start_mono, exec_main_exit_mono, state_change_mono, n_restarts, invocation_id,"
    " main_pid, reported_exit_mono, run_ended, in_restart_cycle, gave_up, awaiting_end";

constexpr std::string_view TRANSITION_COLUMNS =
    "id, ts_usec, mono_usec, unit, event, active_state, sub_state, result, exit_code,"
    " exit_status, n_restarts, invocation_id, main_pid, source, unwatched_since_usec";

using detail::fail;
using detail::run;

int insertTransition(sqlite3_stmt* stmt, const core::Transition& t) {
    detail::rewind(stmt);
    Binder bind(stmt);
    bind.int64(t.ts_usec)
        .int64(t.mono_usec)
        .text(t.unit)
        .text(core::toString(t.event))
        .text(t.active_state)
        .text(t.sub_state)
        .text(t.result)
        .text(t.exit_code)
        .optionalInt(t.exit_status)
        .optionalInt(t.n_restarts)
        .text(t.invocation_id)
        .optionalInt(t.main_pid)
        .text(core::toString(t.source))
        .optionalInt(t.unwatched_since_usec);
    if (bind.rc() != SQLITE_OK) return bind.rc();
    return run(stmt);
}

// Runs a statement whose one parameter is a transition id.
int runWithId(sqlite3_stmt* stmt, std::int64_t transition_id) {
    detail::rewind(stmt);
    Binder bind(stmt);
    bind.int64(transition_id);
    if (bind.rc() != SQLITE_OK) return bind.rc();
    return run(stmt);
}

int upsertUnit(sqlite3_stmt* stmt, const core::UnitSnapshot& u) {
    detail::rewind(stmt);
    Binder bind(stmt);
    bind.text(u.unit)
        .text(u.active_state)
        .text(u.sub_state)
        .text(u.result)
        .int64(u.exec_main_code)
        .int64(u.exec_main_status)
        .int64(u.exec_main_start_mono)
        .int64(u.exec_main_exit_mono)
        .int64(u.state_change_mono)
        .int64(u.n_restarts)
        .text(u.invocation_id)
        .int64(u.main_pid)
        .int64(u.reported_exit_mono)
        .int64(u.run_ended ? 1 : 0)
        .int64(u.in_restart_cycle ? 1 : 0)
        .int64(u.gave_up ? 1 : 0)
        .int64(u.awaiting_end ? 1 : 0);
    if (bind.rc() != SQLITE_OK) return bind.rc();
    return run(stmt);
}

// Rare (once per connection at most): prepared when needed.
int upsertManager(sqlite3* db, const std::string& identity) {
    return detail::runOnce(db,
                           "INSERT INTO manager (id, identity, updated_usec) VALUES (1, ?1,"
                           " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000)"
                           " ON CONFLICT (id) DO UPDATE SET identity = excluded.identity,"
                           " updated_usec = excluded.updated_usec",
                           [&identity](Binder& bind) { bind.text(identity); });
}

int recordHeartbeat(sqlite3* db) {
    return sqlite3_exec(db,
                        "UPDATE manager SET updated_usec ="
                        " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000",
                        nullptr, nullptr, nullptr);
}

core::UnitSnapshot readUnit(sqlite3_stmt* stmt) {
    core::UnitSnapshot u;
    u.unit = columnText(stmt, 0);
    u.active_state = columnText(stmt, 1);
    u.sub_state = columnText(stmt, 2);
    u.result = columnText(stmt, 3);
    u.exec_main_code = sqlite3_column_int(stmt, 4);
    u.exec_main_status = sqlite3_column_int(stmt, 5);
    u.exec_main_start_mono = sqlite3_column_int64(stmt, 6);
    u.exec_main_exit_mono = sqlite3_column_int64(stmt, 7);
    u.state_change_mono = sqlite3_column_int64(stmt, 8);
    u.n_restarts = sqlite3_column_int64(stmt, 9);
    u.invocation_id = columnText(stmt, 10);
    u.main_pid = sqlite3_column_int64(stmt, 11);
    u.reported_exit_mono = sqlite3_column_int64(stmt, 12);
    u.run_ended = sqlite3_column_int(stmt, 13) != 0;
    u.in_restart_cycle = sqlite3_column_int(stmt, 14) != 0;
    u.gave_up = sqlite3_column_int(stmt, 15) != 0;
    u.awaiting_end = sqlite3_column_int(stmt, 16) != 0;
    return u;
}

// The schema's CHECK allows only known names; anything else is a damaged or newer file.
template <typename E>
E knownName(const Database& db, std::optional<E> parsed, std::string_view what,
            const std::string& text, std::int64_t transition_id) {
    if (!parsed)
        throw core::Error(core::ExitCode::Database,
                          "database '" + db.path() + "' has an unknown " + std::string(what) +
                              " '" + text + "' in transition " + std::to_string(transition_id) +
                              "; upgrade cerberus");
    return *parsed;
}

StoredTransition readTransition(const Database& db, sqlite3_stmt* stmt) {
    StoredTransition row;
    row.id = sqlite3_column_int64(stmt, 0);
    auto& t = row.transition;
    t.ts_usec = sqlite3_column_int64(stmt, 1);
    t.mono_usec = sqlite3_column_int64(stmt, 2);
    t.unit = columnText(stmt, 3);
    const std::string event = columnText(stmt, 4);
    t.event = knownName(db, core::parseEvent(event), "event", event, row.id);
    t.active_state = columnText(stmt, 5);
    t.sub_state = columnText(stmt, 6);
    t.result = columnText(stmt, 7);
    t.exit_code = columnText(stmt, 8);
    if (auto status = columnOptionalInt(stmt, 9)) t.exit_status = static_cast<int>(*status);
    t.n_restarts = columnOptionalInt(stmt, 10);
    t.invocation_id = columnText(stmt, 11);
    t.main_pid = columnOptionalInt(stmt, 12);
    t.unwatched_since_usec = columnOptionalInt(stmt, 14);
    const std::string source = columnText(stmt, 13);
    t.source = knownName(db, core::parseSource(source), "source", source, row.id);
    return row;
}

bool hasGlobMeta(std::string_view pattern) {
    return pattern.find_first_of("*?[") != std::string_view::npos;
}

}  // namespace

namespace detail {

// The statements every flush runs, prepared on one connection.
struct WriterStatements {
    explicit WriterStatements(sqlite3* db)
        : begin(db, "BEGIN IMMEDIATE"),
          commit(db, "COMMIT"),
          insert_transition(db, INSERT_TRANSITION_SQL),
          upsert_unit(db, UPSERT_UNIT_SQL),
          delete_unevaluated(db, "DELETE FROM unevaluated WHERE transition_id = ?1") {}
    Statement begin;
    Statement commit;
    Statement insert_transition;
    Statement upsert_unit;
    Statement delete_unevaluated;
};

}  // namespace detail

HistoryWriter::HistoryWriter(Database& db, std::size_t max_queued)
    : db_(db),
      max_queued_(std::max<std::size_t>(max_queued, 1)),
      generation_(db.generation()),
      statements_(std::make_unique<detail::WriterStatements>(db.handle())) {}

HistoryWriter::HistoryWriter(HistoryWriter&& other) noexcept = default;
HistoryWriter::~HistoryWriter() = default;

void HistoryWriter::prepare() {
    statements_ = std::make_unique<detail::WriterStatements>(db_.handle());
    generation_ = db_.generation();
}

void HistoryWriter::addAlert(AlertWrite change) { alerts_.push_back(std::move(change)); }

void HistoryWriter::updateNotification(OutboxUpdate update) {
    updates_.push_back(std::move(update));
}

void HistoryWriter::markEvaluated(std::int64_t transition_id) {
    evaluated_.push_back(transition_id);
}

void HistoryWriter::add(core::Transition transition) {
    while (queue_.size() >= max_queued_) {
        queue_.pop_front();
        ++dropped_;
    }
    queue_.push_back(std::move(transition));
}

void HistoryWriter::putUnit(const core::UnitSnapshot& snapshot) {
    units_.insert_or_assign(snapshot.unit, snapshot);
}

void HistoryWriter::putManager(std::string identity) { manager_ = std::move(identity); }

Result<Flushed> HistoryWriter::flush() {
    Flushed result;
    if (pending() == 0) return result;
    sqlite3* db = db_.handle();
    const auto failed = [&](std::string message) {
        // A failed statement inside the transaction may already have rolled it back.
        if (sqlite3_get_autocommit(db) == 0 &&
            sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) != SQLITE_OK)
            message += std::string("; rollback failed: ") + sqlite3_errmsg(db);
        return Failure{std::move(message)};
    };
    try {
        if (generation_ != db_.generation()) prepare();
        if (run(statements_->begin.get()) != SQLITE_OK) return failed(sqlite3_errmsg(db));
        int rc = SQLITE_OK;
        for (auto it = queue_.begin(); rc == SQLITE_OK && it != queue_.end(); ++it)
            rc = insertTransition(statements_->insert_transition.get(), *it);
        for (auto it = units_.begin(); rc == SQLITE_OK && it != units_.end(); ++it)
            rc = upsertUnit(statements_->upsert_unit.get(), it->second);
        for (auto it = alerts_.begin(); rc == SQLITE_OK && it != alerts_.end(); ++it)
            rc = detail::writeAlert(db, *it);
        for (auto it = updates_.begin(); rc == SQLITE_OK && it != updates_.end(); ++it)
            rc = detail::writeOutboxUpdate(db, *it);
        for (auto it = evaluated_.begin(); rc == SQLITE_OK && it != evaluated_.end(); ++it)
            rc = runWithId(statements_->delete_unevaluated.get(), *it);
        if (rc == SQLITE_OK && manager_) rc = upsertManager(db, *manager_);
        if (rc == SQLITE_OK && heartbeat_) rc = recordHeartbeat(db);
        if (rc == SQLITE_OK) rc = run(statements_->commit.get());
        if (rc != SQLITE_OK) return failed(sqlite3_errmsg(db));
    } catch (const std::exception& e) {
        return failed(e.what());
    }
    result.written = queue_.size();
    for (const auto& alert : alerts_) result.notifications += alert.notifications.size();
    queue_.clear();
    units_.clear();
    alerts_.clear();
    updates_.clear();
    evaluated_.clear();
    manager_.reset();
    beat_ = false;
    return result;
}

Result<std::int64_t> pruneTransitions(Database& db, core::Usec before_usec, int batch) {
    if (batch <= 0) return std::int64_t{0};
    try {
        Statement prune(db.handle(),
                        "DELETE FROM transitions WHERE id IN (SELECT id FROM transitions"
                        " WHERE ts_usec < ?1 ORDER BY ts_usec LIMIT ?2)");
        Binder bind(prune.get());
        bind.int64(before_usec).int64(batch);
        if (bind.rc() != SQLITE_OK || run(prune.get()) != SQLITE_OK)
            fail(db, "prune old transitions");
    } catch (const core::Error& e) {
        return Failure{e.what()};
    }
    return std::int64_t{sqlite3_changes64(db.handle())};
}

std::map<std::string, core::UnitSnapshot> loadUnits(Database& db) {
    Statement select(db.handle(),
                     "SELECT " + std::string(UNIT_COLUMNS) + " FROM units ORDER BY unit");
    std::map<std::string, core::UnitSnapshot> units;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
        auto unit = readUnit(select.get());
        units.insert_or_assign(unit.unit, std::move(unit));
    }
    if (rc != SQLITE_DONE) fail(db, "read the unit snapshots");
    return units;
}

std::optional<core::Usec> lastWatched(Database& db) {
    Statement select(db.handle(), "SELECT updated_usec FROM manager WHERE id = 1");
    const int rc = sqlite3_step(select.get());
    if (rc == SQLITE_ROW) return sqlite3_column_int64(select.get(), 0);
    if (rc != SQLITE_DONE) fail(db, "read when cerberus last watched");
    return std::nullopt;
}

std::string loadManager(Database& db) {
    Statement select(db.handle(), "SELECT identity FROM manager WHERE id = 1");
    const int rc = sqlite3_step(select.get());
    if (rc == SQLITE_ROW) return columnText(select.get(), 0);
    if (rc != SQLITE_DONE) fail(db, "read which manager the unit snapshots belong to");
    return {};
}

std::optional<core::UnitSnapshot> loadUnit(Database& db, const std::string& unit) {
    Statement select(db.handle(),
                     "SELECT " + std::string(UNIT_COLUMNS) + " FROM units WHERE unit = ?1");
    Binder bind(select.get());
    bind.text(unit);
    if (bind.rc() != SQLITE_OK) fail(db, "read the snapshot of unit '" + unit + "'");
    const int rc = sqlite3_step(select.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) fail(db, "read the snapshot of unit '" + unit + "'");
    return readUnit(select.get());
}

std::vector<StoredTransition> queryHistory(Database& db, const HistoryQuery& query) {
    if (query.limit <= 0) return {};
    std::string sql = "SELECT " + std::string(TRANSITION_COLUMNS) + " FROM transitions WHERE 1";
    // Without metacharacters the pattern is a name, and `=` lets SQLite use the index.
    for (std::size_t i = 0; i < query.unit_globs.size(); ++i)
        sql += std::string(i == 0 ? " AND (" : " OR ") +
               (hasGlobMeta(query.unit_globs[i]) ? "unit GLOB ?" : "unit = ?") +
               (i + 1 == query.unit_globs.size() ? ")" : "");
    for (std::size_t i = 0; i < query.events.size(); ++i)
        sql += std::string(i == 0 ? " AND event IN (?" : ", ?") +
               (i + 1 == query.events.size() ? ")" : "");
    if (query.since_usec) sql += " AND ts_usec >= ?";
    if (query.until_usec) sql += " AND ts_usec < ?";
    if (query.after_id) sql += " AND id > ?";
    if (query.through_id) sql += " AND id <= ?";
    sql += query.after_id ? " ORDER BY id LIMIT ?" : " ORDER BY ts_usec DESC, id DESC LIMIT ?";

    Statement select(db.handle(), sql);
    Binder bind(select.get());
    for (const auto& glob : query.unit_globs) bind.text(glob);
    for (const auto event : query.events) bind.text(core::toString(event));
    if (query.since_usec) bind.int64(*query.since_usec);
    if (query.until_usec) bind.int64(*query.until_usec);
    if (query.after_id) bind.int64(*query.after_id);
    if (query.through_id) bind.int64(*query.through_id);
    bind.int64(query.limit);
    if (bind.rc() != SQLITE_OK) fail(db, "query the history");

    std::vector<StoredTransition> rows;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW)
        rows.push_back(readTransition(db, select.get()));
    if (rc != SQLITE_DONE) fail(db, "query the history");
    if (!query.after_id) std::reverse(rows.begin(), rows.end());
    return rows;
}

namespace {

std::int64_t singleInteger(Database& db, const char* sql, const char* what) {
    Statement select(db.handle(), sql);
    if (sqlite3_step(select.get()) != SQLITE_ROW) fail(db, what);
    return sqlite3_column_int64(select.get(), 0);
}

}  // namespace

std::int64_t lastTransitionId(Database& db) {
    return singleInteger(db, "SELECT coalesce(max(id), 0) FROM transitions",
                         "read the newest transition");
}

std::int64_t dataVersion(Database& db) {
    return singleInteger(db, "PRAGMA data_version", "read the data version");
}

}  // namespace cerberus::store

namespace cerberus::store {

void forEachTransition(Database& db, std::optional<core::Usec> since_usec,
                       std::optional<core::Usec> until_usec,
                       const std::function<bool(const core::Transition&)>& visit,
                       bool evaluated_only) {
    std::string sql = "SELECT " + std::string(TRANSITION_COLUMNS) + " FROM transitions WHERE 1";
    if (evaluated_only) sql += " AND id NOT IN (SELECT transition_id FROM unevaluated)";
    if (since_usec) sql += " AND ts_usec >= ?";
    if (until_usec) sql += " AND ts_usec < ?";
    sql += " ORDER BY ts_usec, id";
    Statement select(db.handle(), sql);
    Binder bind(select.get());
    if (since_usec) bind.int64(*since_usec);
    if (until_usec) bind.int64(*until_usec);
    if (bind.rc() != SQLITE_OK) fail(db, "read the history");
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW)
        if (!visit(readTransition(db, select.get()).transition)) return;
    if (rc != SQLITE_DONE) fail(db, "read the history");
}

std::optional<core::Transition> lastTransition(Database& db, const std::string& unit) {
    Statement select(db.handle(), "SELECT " + std::string(TRANSITION_COLUMNS) +
                                      " FROM transitions WHERE unit = ?1"
                                      " ORDER BY ts_usec DESC, id DESC LIMIT 1");
    Binder bind(select.get());
    bind.text(unit);
    if (bind.rc() != SQLITE_OK) fail(db, "read the last transition of unit '" + unit + "'");
    const int rc = sqlite3_step(select.get());
    if (rc == SQLITE_DONE) return std::nullopt;
    if (rc != SQLITE_ROW) fail(db, "read the last transition of unit '" + unit + "'");
    return readTransition(db, select.get()).transition;
}

void appendUnevaluated(Database& db, const std::vector<core::Transition>& transitions) {
    Statement mark(db.handle(), "INSERT INTO unevaluated (transition_id) VALUES (?1)");
    sqlite3* handle = db.handle();
    if (sqlite3_exec(handle, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
        fail(db, "append transitions");
    Statement insert(handle, INSERT_TRANSITION_SQL);
    int rc = SQLITE_OK;
    for (auto it = transitions.begin(); rc == SQLITE_OK && it != transitions.end(); ++it) {
        rc = insertTransition(insert.get(), *it);
        if (rc == SQLITE_OK) rc = runWithId(mark.get(), sqlite3_last_insert_rowid(handle));
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(handle, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
        const std::string message = sqlite3_errmsg(handle);
        // The append failed either way; what ROLLBACK cannot undo, closing the connection does.
        if (sqlite3_get_autocommit(handle) == 0)
            (void)sqlite3_exec(handle, "ROLLBACK", nullptr, nullptr, nullptr);
        throw core::Error(core::ExitCode::Database, "cannot append transitions to database '" +
                                                        db.path() + "': " + message +
                                                        "; check the file or pass --db");
    }
}

std::vector<StoredTransition> loadUnevaluated(Database& db) {
    Statement select(db.handle(), "SELECT " + std::string(TRANSITION_COLUMNS) +
                                      " FROM transitions WHERE id IN"
                                      " (SELECT transition_id FROM unevaluated) ORDER BY id");
    std::vector<StoredTransition> rows;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(select.get())) == SQLITE_ROW)
        rows.push_back(readTransition(db, select.get()));
    if (rc != SQLITE_DONE) fail(db, "read the unevaluated transitions");
    return rows;
}

}  // namespace cerberus::store
