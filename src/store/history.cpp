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

Failure failure(const Database& db, const std::string& what) {
    return Failure{"cannot " + what + " in database '" + db.path() +
                   "': " + sqlite3_errmsg(db.handle()) + "; check the file or pass --db"};
}

void fail(const Database& db, const std::string& what) {
    throw core::Error(core::ExitCode::Database, failure(db, what).message);
}

Query::Query(const Database& db, std::string_view sql, std::string what)
    : db_(db),
      what_(std::move(what)),
      statement_(tryPrepare(db.handle(), sql)),
      binder_(statement_.ok() ? statement_.value().get() : nullptr) {}

int run(sqlite3_stmt* stmt) {
    const int rc = sqlite3_step(stmt);
    rewind(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

}  // namespace detail

namespace {

using detail::Binder;
using detail::Query;
using detail::Row;

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
    bind.values(t.ts_usec, t.mono_usec, t.unit, core::toString(t.event), t.active_state,
                t.sub_state, t.result, t.exit_code, t.exit_status, t.n_restarts, t.invocation_id,
                t.main_pid, core::toString(t.source), t.unwatched_since_usec);
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
    bind.values(u.unit, u.active_state, u.sub_state, u.result, u.exec_main_code, u.exec_main_status,
                u.exec_main_start_mono, u.exec_main_exit_mono, u.state_change_mono, u.n_restarts,
                u.invocation_id, u.main_pid, u.reported_exit_mono, u.run_ended, u.in_restart_cycle,
                u.gave_up, u.awaiting_end);
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
                           identity);
}

int recordHeartbeat(sqlite3* db) {
    return sqlite3_exec(db,
                        "UPDATE manager SET updated_usec ="
                        " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) * 1000",
                        nullptr, nullptr, nullptr);
}

core::UnitSnapshot readUnit(Row& row) {
    core::UnitSnapshot u;
    row.into(u.unit, u.active_state, u.sub_state, u.result, u.exec_main_code, u.exec_main_status,
             u.exec_main_start_mono, u.exec_main_exit_mono, u.state_change_mono, u.n_restarts,
             u.invocation_id, u.main_pid, u.reported_exit_mono, u.run_ended, u.in_restart_cycle,
             u.gave_up, u.awaiting_end);
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

StoredTransition readTransition(const Database& db, Row& row) {
    StoredTransition stored;
    auto& t = stored.transition;
    std::string event;
    std::string source;
    row.into(stored.id, t.ts_usec, t.mono_usec, t.unit, event, t.active_state, t.sub_state,
             t.result, t.exit_code, t.exit_status, t.n_restarts, t.invocation_id, t.main_pid,
             source, t.unwatched_since_usec);
    t.event = knownName(db, core::parseEvent(event), "event", event, stored.id);
    t.source = knownName(db, core::parseSource(source), "source", source, stored.id);
    return stored;
}

// readTransition for one database, as Query::all and Query::first take it.
auto transitionsOf(const Database& db) {
    return [&db](Row& row) { return readTransition(db, row); };
}

bool hasGlobMeta(std::string_view pattern) {
    return pattern.find_first_of("*?[") != std::string_view::npos;
}

}  // namespace

namespace detail {

// The statements every flush runs, prepared on one connection.
struct WriterStatements {
    explicit WriterStatements(sqlite3* db)
        : begin(prepareOrThrow(db, "BEGIN IMMEDIATE")),
          commit(prepareOrThrow(db, "COMMIT")),
          insert_transition(prepareOrThrow(db, INSERT_TRANSITION_SQL)),
          upsert_unit(prepareOrThrow(db, UPSERT_UNIT_SQL)),
          delete_unevaluated(
              prepareOrThrow(db, "DELETE FROM unevaluated WHERE transition_id = ?1")) {}
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
    auto prune =
        detail::tryPrepare(db.handle(),
                           "DELETE FROM transitions WHERE id IN (SELECT id FROM transitions"
                           " WHERE ts_usec < ?1 ORDER BY ts_usec LIMIT ?2)");
    if (!prune.ok()) return Failure{prune.error()};
    Binder bind(prune.value().get());
    bind.int64(before_usec).int64(batch);
    if (bind.rc() != SQLITE_OK || run(prune.value().get()) != SQLITE_OK)
        return detail::failure(db, "prune old transitions");
    return std::int64_t{sqlite3_changes64(db.handle())};
}

std::map<std::string, core::UnitSnapshot> loadUnits(Database& db) {
    Query select(db, "SELECT " + std::string(UNIT_COLUMNS) + " FROM units ORDER BY unit",
                 "read the unit snapshots");
    std::map<std::string, core::UnitSnapshot> units;
    select
        .each([&units](Row& row) {
            auto unit = readUnit(row);
            units.insert_or_assign(unit.unit, std::move(unit));
            return true;
        })
        .orThrow();
    return units;
}

std::optional<core::Usec> lastWatched(Database& db) {
    Query select(db, "SELECT updated_usec FROM manager WHERE id = 1",
                 "read when cerberus last watched");
    return select.first([](Row& row) { return row.int64(); }).orThrow();
}

std::string loadManager(Database& db) {
    Query select(db, "SELECT identity FROM manager WHERE id = 1",
                 "read which manager the unit snapshots belong to");
    return select.first([](Row& row) { return row.text(); }).orThrow().value_or("");
}

std::optional<core::UnitSnapshot> loadUnit(Database& db, const std::string& unit) {
    Query select(db, "SELECT " + std::string(UNIT_COLUMNS) + " FROM units WHERE unit = ?1",
                 "read the snapshot of unit '" + unit + "'");
    select.bind().text(unit);
    return select.first(readUnit).orThrow();
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

    Query select(db, sql, "query the history");
    Binder& bind = select.bind();
    for (const auto& glob : query.unit_globs) bind.text(glob);
    for (const auto event : query.events) bind.text(core::toString(event));
    if (query.since_usec) bind.int64(*query.since_usec);
    if (query.until_usec) bind.int64(*query.until_usec);
    if (query.after_id) bind.int64(*query.after_id);
    if (query.through_id) bind.int64(*query.through_id);
    bind.int64(query.limit);
    auto rows = select.all(transitionsOf(db)).orThrow();
    if (!query.after_id) std::reverse(rows.begin(), rows.end());
    return rows;
}

namespace {

std::int64_t singleInteger(Database& db, const char* sql, const char* what) {
    Query select(db, sql, what);
    const auto value = select.first([](Row& row) { return row.int64(); }).orThrow();
    if (!value) fail(db, what);
    return *value;
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

Result<Done> tryForEachTransition(Database& db, std::optional<core::Usec> since_usec,
                                  std::optional<core::Usec> until_usec,
                                  const std::function<bool(const core::Transition&)>& visit,
                                  bool evaluated_only) {
    std::string sql = "SELECT " + std::string(TRANSITION_COLUMNS) + " FROM transitions WHERE 1";
    if (evaluated_only) sql += " AND id NOT IN (SELECT transition_id FROM unevaluated)";
    if (since_usec) sql += " AND ts_usec >= ?";
    if (until_usec) sql += " AND ts_usec < ?";
    sql += " ORDER BY ts_usec, id";
    Query select(db, sql, "read the history");
    if (since_usec) select.bind().int64(*since_usec);
    if (until_usec) select.bind().int64(*until_usec);
    return select.each([&](Row& row) { return visit(readTransition(db, row).transition); });
}

void forEachTransition(Database& db, std::optional<core::Usec> since_usec,
                       std::optional<core::Usec> until_usec,
                       const std::function<bool(const core::Transition&)>& visit,
                       bool evaluated_only) {
    (void)tryForEachTransition(db, since_usec, until_usec, visit, evaluated_only).orThrow();
}

std::optional<core::Transition> lastTransition(Database& db, const std::string& unit) {
    Query select(db,
                 "SELECT " + std::string(TRANSITION_COLUMNS) +
                     " FROM transitions WHERE unit = ?1 ORDER BY ts_usec DESC, id DESC LIMIT 1",
                 "read the last transition of unit '" + unit + "'");
    select.bind().text(unit);
    const auto row = select.first(transitionsOf(db)).orThrow();
    if (!row) return std::nullopt;
    return row->transition;
}

void appendUnevaluated(Database& db, const std::vector<core::Transition>& transitions) {
    const auto mark =
        detail::prepareOrThrow(db.handle(), "INSERT INTO unevaluated (transition_id) VALUES (?1)");
    sqlite3* handle = db.handle();
    if (sqlite3_exec(handle, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK)
        fail(db, "append transitions");
    const auto insert = detail::prepareOrThrow(handle, INSERT_TRANSITION_SQL);
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
    Query select(db,
                 "SELECT " + std::string(TRANSITION_COLUMNS) +
                     " FROM transitions WHERE id IN (SELECT transition_id FROM unevaluated)"
                     " ORDER BY id",
                 "read the unevaluated transitions");
    return select.all(transitionsOf(db)).orThrow();
}

}  // namespace cerberus::store
