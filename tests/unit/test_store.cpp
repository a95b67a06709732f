#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/time.hpp"
#include "core/transition.hpp"
#include "store/checkpoint.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace cerberus;
using store::Database;
using store::OpenMode;

using test::TempDir;

namespace {

// A second connection, opened with SQLite directly so it shares nothing with the store.
class RawConnection {
public:
    explicit RawConnection(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                nullptr) == SQLITE_OK);
    }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;
    ~RawConnection() { sqlite3_close_v2(db_); }
    void exec(const std::string& sql) {
        char* error = nullptr;
        const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
        INFO(sql << ": " << (error != nullptr ? error : ""));
        sqlite3_free(error);
        REQUIRE(rc == SQLITE_OK);
    }

private:
    sqlite3* db_ = nullptr;
};

using Rows = std::vector<std::vector<std::string>>;

// Every row as text, NULL as "NULL".
Rows select(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    const int prepared = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
    INFO(sql << ": " << sqlite3_errmsg(db));
    REQUIRE(prepared == SQLITE_OK);
    Rows rows;
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        std::vector<std::string> row;
        for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
            row.emplace_back(text != nullptr ? text : "NULL");
        }
        rows.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    REQUIRE(rc == SQLITE_DONE);
    return rows;
}

std::string scalar(Database& db, const std::string& sql) {
    const auto rows = select(db.handle(), sql);
    REQUIRE(rows.size() == 1);
    REQUIRE(rows[0].size() == 1);
    return rows[0][0];
}

std::string readBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

core::ExitCode openFailure(const std::string& path, OpenMode mode, std::string* message) {
    try {
        Database::open(path, mode);
    } catch (const core::Error& e) {
        if (message != nullptr) *message = e.what();
        return e.code();
    }
    FAIL("opening '" << path << "' succeeded");
    return core::ExitCode::Ok;
}

core::Transition transition(std::string unit, core::Event event, core::Usec ts_usec) {
    core::Transition t;
    t.ts_usec = ts_usec;
    t.mono_usec = ts_usec / 2;
    t.unit = std::move(unit);
    t.event = event;
    return t;
}

core::Transition crash(std::string unit, core::Usec ts_usec, int status) {
    auto t = transition(std::move(unit), core::Event::Crash, ts_usec);
    t.active_state = "failed";
    t.sub_state = "failed";
    t.result = "exit-code";
    t.exit_code = "exited";
    t.exit_status = status;
    return t;
}

std::vector<core::Usec> timesOf(const std::vector<store::StoredTransition>& rows) {
    std::vector<core::Usec> times;
    for (const auto& row : rows) times.push_back(row.transition.ts_usec);
    return times;
}

std::string name(core::Event event) { return std::string(core::toString(event)); }
std::string name(core::Source source) { return std::string(core::toString(source)); }

constexpr core::Usec T0 = 1'764'300'000 * core::USEC_PER_SEC;

}  // namespace

TEST_CASE("migrating a new database sets user_version to the latest schema and creates tables") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    CHECK(db.schemaVersion() == store::latestSchemaVersion());
    CHECK(store::latestSchemaVersion() >= 1);
    CHECK(scalar(db, "PRAGMA journal_mode") == "wal");
    CHECK(scalar(db, "PRAGMA foreign_keys") == "1");
    CHECK(scalar(db, "PRAGMA synchronous") == "1");  // NORMAL
    for (const char* table : {"transitions", "units", "alerts", "notifications", "silences"})
        CHECK_MESSAGE(scalar(db, std::string("SELECT count(*) FROM sqlite_master WHERE type = "
                                             "'table' AND name = '") +
                                     table + "'") == "1",
                      table);
    CHECK(scalar(db,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name IN "
                 "('history', 'firing')") == "2");
}

TEST_CASE("reopening a migrated database keeps its rows and its schema version") {
    TempDir dir;
    const auto path = dir.file("c.db");
    {
        auto db = Database::open(path, OpenMode::ReadWrite);
        store::HistoryWriter writer(db);
        writer.add(transition("a.service", core::Event::Start, T0));
        REQUIRE(writer.flush().ok());
    }
    auto db = Database::open(path, OpenMode::ReadWrite);
    CHECK(db.schemaVersion() == store::latestSchemaVersion());
    CHECK(scalar(db, "SELECT count(*) FROM transitions") == "1");
    auto reader = Database::open(path, OpenMode::ReadOnly);
    CHECK(store::queryHistory(reader, {}).size() == 1);
}

TEST_CASE("a new database file and its WAL are created with mode 0600") {
    TempDir dir;
    const auto path = dir.file("c.db");
    const mode_t old_umask = ::umask(0);  // the widest umask must not widen the file
    auto db = Database::open(path, OpenMode::ReadWrite);
    ::umask(old_umask);
    store::HistoryWriter writer(db);
    writer.add(transition("a.service", core::Event::Start, T0));
    REQUIRE(writer.flush().ok());
    for (const auto& file : {path, path + "-wal"}) {
        struct stat st {};
        REQUIRE(::stat(file.c_str(), &st) == 0);
        CHECK_MESSAGE((st.st_mode & 07777) == 0600, file);
    }
}

TEST_CASE("a database from a newer schema is refused and its bytes are unchanged") {
    TempDir dir;
    const auto path = dir.file("c.db");
    {
        RawConnection raw(path);
        raw.exec("CREATE TABLE future (x); PRAGMA user_version = 7");
    }
    const auto before = readBytes(path);
    std::string message;
    CHECK(openFailure(path, OpenMode::ReadWrite, &message) == core::ExitCode::Database);
    CHECK(message.find("schema version 7") != std::string::npos);
    CHECK(message.find("upgrade cerberus") != std::string::npos);
    CHECK(openFailure(path, OpenMode::ReadOnly, nullptr) == core::ExitCode::Database);
    CHECK(readBytes(path) == before);
}

TEST_CASE("a missing directory is a database error and is not created") {
    TempDir dir;
    const auto path = dir.file("missing/c.db");
    std::string message;
    CHECK(openFailure(path, OpenMode::ReadWrite, &message) == core::ExitCode::Database);
    CHECK(message.find("does not exist") != std::string::npos);
    CHECK(message.find("--db") != std::string::npos);
    CHECK_FALSE(fs::exists(dir.file("missing")));
}

TEST_CASE("a directory that is not writable is a database error") {
    if (::geteuid() == 0) {
        MESSAGE("skipped: root writes into any directory");
        return;
    }
    TempDir dir;
    fs::create_directory(dir.file("ro"));
    fs::permissions(dir.file("ro"), fs::perms::owner_read | fs::perms::owner_exec);
    std::string message;
    CHECK(openFailure(dir.file("ro/c.db"), OpenMode::ReadWrite, &message) ==
          core::ExitCode::Database);
    CHECK(message.find("not writable") != std::string::npos);
    fs::permissions(dir.file("ro"), fs::perms::owner_all);
}

TEST_CASE("opening a missing database read-only is refused and creates nothing") {
    TempDir dir;
    const auto path = dir.file("c.db");
    std::string message;
    CHECK(openFailure(path, OpenMode::ReadOnly, &message) == core::ExitCode::Database);
    CHECK(message == "no database at '" + path + "'; run 'cerberus run' first or pass --db");
    CHECK_FALSE(fs::exists(path));
}

TEST_CASE("a file that is not a database is refused and left alone") {
    TempDir dir;
    const auto path = dir.file("c.db");
    std::ofstream(path) << std::string(4096, 'x');
    const auto before = readBytes(path);
    std::string message;
    CHECK(openFailure(path, OpenMode::ReadWrite, &message) == core::ExitCode::Database);
    CHECK(message == "'" + path + "' is not a cerberus database (file is not a database); " +
                         "pass --db with another file");
    CHECK(openFailure(path, OpenMode::ReadOnly, nullptr) == core::ExitCode::Database);
    CHECK(readBytes(path) == before);
}

TEST_CASE("another program's SQLite database is refused, not migrated into") {
    TempDir dir;
    const auto path = dir.file("other.db");
    {
        RawConnection raw(path);
        raw.exec("CREATE TABLE notes (text)");
    }
    std::string message;
    CHECK(openFailure(path, OpenMode::ReadWrite, &message) == core::ExitCode::Database);
    CHECK(message.find("is not a cerberus database") != std::string::npos);
    RawConnection raw(path);
    raw.exec("SELECT 1");
}

TEST_CASE("the writer round-trips transitions, absent optionals stored as NULL") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);

    auto full = crash("web.service", T0, 3);
    full.n_restarts = 4;
    full.invocation_id = "0123456789abcdef0123456789abcdef";
    full.main_pid = 4242;
    full.source = core::Source::Reconcile;
    auto bare = transition("web.service", core::Event::GiveUp, T0 + 1);
    bare.source = core::Source::Emit;
    writer.add(full);
    writer.add(bare);
    CHECK(writer.pending() == 2);

    const auto result = writer.flush();
    REQUIRE(result.ok());
    CHECK(result.value().written == 2);
    CHECK(writer.pending() == 0);
    CHECK(writer.flush().value().written == 0);

    const auto rows = store::queryHistory(db, {});
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].id < rows[1].id);
    const auto& a = rows[0].transition;
    CHECK(a.ts_usec == full.ts_usec);
    CHECK(a.mono_usec == full.mono_usec);
    CHECK(a.unit == "web.service");
    CHECK(name(a.event) == name(core::Event::Crash));
    CHECK(a.active_state == "failed");
    CHECK(a.sub_state == "failed");
    CHECK(a.result == "exit-code");
    CHECK(a.exit_code == "exited");
    CHECK(a.exit_status == 3);
    CHECK(a.n_restarts == 4);
    CHECK(a.invocation_id == full.invocation_id);
    CHECK(a.main_pid == 4242);
    CHECK(name(a.source) == name(core::Source::Reconcile));
    const auto& b = rows[1].transition;
    CHECK(name(b.event) == name(core::Event::GiveUp));
    CHECK(name(b.source) == name(core::Source::Emit));
    CHECK_FALSE(b.exit_status.has_value());
    CHECK_FALSE(b.n_restarts.has_value());
    CHECK_FALSE(b.main_pid.has_value());
    CHECK(select(db.handle(),
                 "SELECT exit_status IS NULL, n_restarts IS NULL, main_pid IS NULL,"
                 " event FROM transitions WHERE id = " +
                     std::to_string(rows[1].id)) == Rows{{"1", "1", "1", "give_up"}});
    const auto first_id = std::to_string(rows[0].id);
    CHECK(select(db.handle(), "SELECT time FROM history WHERE id = " + first_id) ==
          Rows{{"2025-11-28T03:20:00.000Z"}});
}

TEST_CASE("unit snapshots round-trip through loadUnits and the last snapshot wins") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);

    core::UnitSnapshot web;
    web.unit = "web.service";
    web.active_state = "activating";
    web.sub_state = "auto-restart";
    web.result = "exit-code";
    web.exec_main_code = 1;
    web.exec_main_status = 3;
    web.exec_main_start_mono = 1000;
    web.exec_main_exit_mono = 2000;
    web.state_change_mono = 2500;
    web.n_restarts = 7;
    web.invocation_id = "0123456789abcdef0123456789abcdef";
    web.main_pid = 0;
    web.reported_exit_mono = 2000;
    web.run_ended = true;
    web.in_restart_cycle = true;
    web.gave_up = false;
    core::UnitSnapshot timer;
    timer.unit = "backup.timer";
    timer.active_state = "active";
    timer.sub_state = "waiting";
    timer.gave_up = true;

    writer.putUnit(timer);
    timer.sub_state = "elapsed";  // only the latest snapshot of a unit is written
    writer.putUnit(timer);
    writer.putUnit(web);
    CHECK(writer.pending() == 2);
    REQUIRE(writer.flush().ok());

    const auto units = store::loadUnits(db);
    REQUIRE(units.size() == 2);
    const auto& w = units.at("web.service");
    CHECK(w.active_state == web.active_state);
    CHECK(w.sub_state == web.sub_state);
    CHECK(w.result == web.result);
    CHECK(w.exec_main_code == 1);
    CHECK(w.exec_main_status == 3);
    CHECK(w.exec_main_start_mono == 1000);
    CHECK(w.exec_main_exit_mono == 2000);
    CHECK(w.state_change_mono == 2500);
    CHECK(w.n_restarts == 7);
    CHECK(w.invocation_id == web.invocation_id);
    CHECK(w.main_pid == 0);
    CHECK(w.reported_exit_mono == 2000);
    CHECK(w.run_ended);
    CHECK(w.in_restart_cycle);
    CHECK_FALSE(w.gave_up);
    const auto& t = units.at("backup.timer");
    CHECK(t.sub_state == "elapsed");
    CHECK(t.n_restarts == -1);
    CHECK(t.gave_up);

    web.n_restarts = 8;
    web.run_ended = false;
    writer.putUnit(web);
    REQUIRE(writer.flush().ok());
    const auto again = store::loadUnit(db, "web.service");
    REQUIRE(again.has_value());
    CHECK(again->n_restarts == 8);
    CHECK_FALSE(again->run_ended);
    CHECK(scalar(db, "SELECT count(*) FROM units") == "2");
    CHECK(scalar(db, "SELECT updated_usec > 0 FROM units WHERE unit = 'web.service'") == "1");
    CHECK_FALSE(store::loadUnit(db, "nope.service").has_value());
}

TEST_CASE("a flush that cannot get the write lock keeps everything queued for the next try") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    REQUIRE(sqlite3_busy_timeout(db.handle(), 10) == SQLITE_OK);
    store::HistoryWriter writer(db);
    for (int i = 0; i < 3; ++i) writer.add(crash("web.service", T0 + i, i));
    core::UnitSnapshot web;
    web.unit = "web.service";
    web.n_restarts = 3;
    writer.putUnit(web);

    {
        RawConnection other(path);
        other.exec("BEGIN IMMEDIATE");
        const auto failed = writer.flush();
        REQUIRE_FALSE(failed.ok());
        CHECK(failed.error() == "database is locked");
        CHECK(writer.pending() == 4);
        CHECK(writer.dropped() == 0);
        other.exec("ROLLBACK");
    }
    const auto result = writer.flush();
    REQUIRE(result.ok());
    CHECK(result.value().written == 3);
    CHECK(writer.pending() == 0);
    CHECK(select(db.handle(), "SELECT exit_status FROM transitions ORDER BY id") ==
          Rows{{"0"}, {"1"}, {"2"}});
    CHECK(store::loadUnit(db, "web.service")->n_restarts == 3);
}

TEST_CASE("a flush that fails halfway rolls back and writes each row exactly once later") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    writer.add(crash("a.service", T0, 1));
    writer.add(crash("b.service", T0 + 1, 2));
    // A trigger makes the second insert fail after the first one succeeded.
    REQUIRE(sqlite3_exec(db.handle(),
                         "CREATE TEMP TRIGGER no_b BEFORE INSERT ON transitions"
                         " WHEN NEW.unit = 'b.service' BEGIN SELECT RAISE(ABORT, 'no b'); END",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    const auto failed = writer.flush();
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.error() == "no b");
    CHECK(writer.pending() == 2);
    CHECK(scalar(db, "SELECT count(*) FROM transitions") == "0");

    REQUIRE(sqlite3_exec(db.handle(), "DROP TRIGGER temp.no_b", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    CHECK(writer.flush().value().written == 2);
    CHECK(select(db.handle(), "SELECT unit FROM transitions ORDER BY id") ==
          Rows{{"a.service"}, {"b.service"}});
}

TEST_CASE("a full queue drops the oldest transitions and counts them") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db, 3);
    for (int i = 0; i < 5; ++i) writer.add(crash("web.service", T0 + i, i));
    CHECK(writer.pending() == 3);
    CHECK(writer.dropped() == 2);
    CHECK(writer.flush().value().written == 3);
    CHECK(select(db.handle(), "SELECT exit_status FROM transitions ORDER BY id") ==
          Rows{{"2"}, {"3"}, {"4"}});
    CHECK(writer.dropped() == 2);
}

TEST_CASE("queryHistory filters by glob, exact unit, event and time, newest N oldest first") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    writer.add(transition("web-1.service", core::Event::Start, T0 + 10));
    writer.add(crash("web-1.service", T0 + 20, 1));
    writer.add(transition("web-2.service", core::Event::Start, T0 + 30));
    writer.add(crash("web-2.service", T0 + 40, 2));
    writer.add(transition("db.service", core::Event::Start, T0 + 50));
    writer.add(crash("web-1.service", T0 + 60, 3));
    writer.add(transition("web-1.service", core::Event::Restart, T0 + 60));  // same time
    REQUIRE(writer.flush().ok());

    auto query = [&](auto&& set) {
        store::HistoryQuery q;
        set(q);
        return store::queryHistory(db, q);
    };
    using Q = store::HistoryQuery;
    using Times = std::vector<core::Usec>;
    CHECK(timesOf(query([](Q&) {})) ==
          Times{T0 + 10, T0 + 20, T0 + 30, T0 + 40, T0 + 50, T0 + 60, T0 + 60});
    CHECK(timesOf(query([](Q& q) { q.unit_globs = {"web-*.service"}; })) ==
          Times{T0 + 10, T0 + 20, T0 + 30, T0 + 40, T0 + 60, T0 + 60});
    CHECK(timesOf(query([](Q& q) {
              q.unit_globs = {"web-?.service"};
              q.events = {core::Event::Crash};
          })) == Times{T0 + 20, T0 + 40, T0 + 60});
    CHECK(timesOf(query([](Q& q) { q.unit_globs = {"web-[2].service"}; })) ==
          Times{T0 + 30, T0 + 40});
    CHECK(timesOf(query([](Q& q) { q.unit_globs = {"db.service"}; })) == Times{T0 + 50});
    // Without metacharacters a pattern is a whole name.
    CHECK(query([](Q& q) { q.unit_globs = {"web"}; }).empty());
    CHECK(timesOf(query([](Q& q) { q.events = {core::Event::Start}; })) ==
          Times{T0 + 10, T0 + 30, T0 + 50});
    // since is inclusive, until exclusive, so adjacent windows never count a row twice.
    CHECK(timesOf(query([](Q& q) {
              q.since_usec = T0 + 20;
              q.until_usec = T0 + 50;
          })) == Times{T0 + 20, T0 + 30, T0 + 40});
    CHECK(timesOf(query([](Q& q) { q.since_usec = T0 + 55; })) == Times{T0 + 60, T0 + 60});

    const auto newest = query([](Q& q) { q.limit = 3; });
    CHECK(timesOf(newest) == Times{T0 + 50, T0 + 60, T0 + 60});
    REQUIRE(newest.size() == 3);
    // Rows with the same time keep their insertion order.
    CHECK(name(newest[1].transition.event) == "crash");
    CHECK(name(newest[2].transition.event) == "restart");
    CHECK(query([](Q& q) { q.limit = 0; }).empty());

    // Several units and events: any of them.
    CHECK(timesOf(query([](Q& q) {
              q.unit_globs = {"db.service", "web-2.service"};
          })) == Times{T0 + 30, T0 + 40, T0 + 50});
    CHECK(timesOf(query([](Q& q) {
              q.unit_globs = {"db.service", "web-2*"};
              q.events = {core::Event::Start, core::Event::Restart};
          })) == Times{T0 + 30, T0 + 50});
}

TEST_CASE("following reads the rows stored after an id, in stored order, up to another") {
    TempDir dir;
    auto db = Database::open(dir.file("f.db"), OpenMode::ReadWrite);
    CHECK(store::lastTransitionId(db) == 0);
    store::HistoryWriter writer(db);
    writer.add(crash("web.service", T0 + 20, 1));
    REQUIRE(writer.flush().ok());
    const auto seen = store::lastTransitionId(db);
    CHECK(seen > 0);

    auto reader = Database::open(dir.file("f.db"), OpenMode::ReadOnly);
    const auto version = store::dataVersion(reader);
    CHECK(store::dataVersion(reader) == version);
    writer.add(crash("web.service", T0 + 40, 2));
    writer.add(transition("db.service", core::Event::Start, T0 + 10));  // older, stored later
    writer.add(crash("web.service", T0 + 30, 3));
    REQUIRE(writer.flush().ok());
    CHECK(store::dataVersion(reader) != version);

    store::HistoryQuery q;
    q.after_id = seen;
    CHECK(timesOf(store::queryHistory(reader, q)) ==
          std::vector<core::Usec>{T0 + 40, T0 + 10, T0 + 30});
    q.unit_globs = {"web.service"};
    q.through_id = seen + 2;
    CHECK(timesOf(store::queryHistory(reader, q)) == std::vector<core::Usec>{T0 + 40});
}

TEST_CASE("an exact unit name uses the (unit, ts_usec) index") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    const auto plan = select(db.handle(),
                             "EXPLAIN QUERY PLAN SELECT id FROM transitions WHERE "
                             "unit = 'a.service' ORDER BY ts_usec DESC, id DESC");
    REQUIRE_FALSE(plan.empty());
    CHECK(plan[0].back().find("transitions_unit_ts") != std::string::npos);
}

TEST_CASE("pruneTransitions deletes old transitions in batches, oldest first") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    for (int i = 0; i < 10; ++i) writer.add(transition("a.service", core::Event::Start, T0 + i));
    REQUIRE(writer.flush().ok());

    CHECK(store::pruneTransitions(db, T0 + 7, 3).value() == 3);
    CHECK(scalar(db, "SELECT min(ts_usec) - " + std::to_string(T0) + " FROM transitions") == "3");
    CHECK(store::pruneTransitions(db, T0 + 7, 3).value() == 3);
    CHECK(store::pruneTransitions(db, T0 + 7, 3).value() == 1);
    CHECK(store::pruneTransitions(db, T0 + 7, 3).value() == 0);
    CHECK(scalar(db, "SELECT count(*) FROM transitions") == "3");
    CHECK(store::pruneTransitions(db, T0 + 100, 0).value() == 0);
}

TEST_CASE("pruneTransitions returns a locked database as a failure and deletes nothing") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    REQUIRE(sqlite3_busy_timeout(db.handle(), 10) == SQLITE_OK);
    store::HistoryWriter writer(db);
    for (int i = 0; i < 3; ++i) writer.add(transition("a.service", core::Event::Start, T0 + i));
    REQUIRE(writer.flush().ok());

    RawConnection other(path);
    other.exec("BEGIN IMMEDIATE");
    const auto pruned = store::pruneTransitions(db, T0 + 100, 10);
    REQUIRE_FALSE(pruned.ok());
    CHECK(pruned.error().find("database is locked") != std::string::npos);
    other.exec("ROLLBACK");
    CHECK(scalar(db, "SELECT count(*) FROM transitions") == "3");
}

TEST_CASE("a read-only connection reads while a writer holds the database open") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    writer.add(transition("a.service", core::Event::Start, T0));
    REQUIRE(writer.flush().ok());
    auto reader = Database::open(path, OpenMode::ReadOnly);
    writer.add(transition("a.service", core::Event::Stop, T0 + 1));
    REQUIRE(writer.flush().ok());
    CHECK(store::queryHistory(reader, {}).size() == 2);
    CHECK(sqlite3_exec(reader.handle(), "DELETE FROM transitions", nullptr, nullptr, nullptr) ==
          SQLITE_READONLY);
}

namespace {

std::string sourceRoot() {
#ifdef CERBERUS_SOURCE_ROOT
    return CERBERUS_SOURCE_ROOT;
#else
    const char* root = std::getenv("CERBERUS_SOURCE_ROOT");
    return root != nullptr ? root : "";
#endif
}

// `-- name: slug` starts a query; the text up to the next one is its comment and statement.
std::map<std::string, std::string> loadNamedQueries(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot read " << path);
    std::map<std::string, std::string> queries;
    std::string line;
    std::string* current = nullptr;
    const std::string marker = "-- name:";
    while (std::getline(in, line)) {
        if (line.rfind(marker, 0) == 0) {
            std::string name = line.substr(marker.size());
            name.erase(0, name.find_first_not_of(' '));
            name.erase(name.find_last_not_of(' ') + 1);
            REQUIRE_MESSAGE(!queries.contains(name), "duplicate query " << name);
            current = &queries[name];
        } else if (current != nullptr) {
            *current += line + "\n";
        }
    }
    return queries;
}

// Runs a statement and checks that nothing but blank space and comments follow it.
Rows runSingleStatement(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, &tail) == SQLITE_OK,
                    sqlite3_errmsg(db));
    REQUIRE(stmt != nullptr);
    sqlite3_finalize(stmt);
    std::istringstream rest{std::string(tail)};
    std::string line;
    while (std::getline(rest, line)) {
        const auto start = line.find_first_not_of(" \t");
        CHECK_MESSAGE((start == std::string::npos || line.compare(start, 2, "--") == 0),
                      "more than one statement: " << line);
    }
    return select(db, sql);
}

}  // namespace

TEST_CASE("the example queries in examples/queries.sql answer correctly on known history") {
    const std::string root = sourceRoot();
    REQUIRE_MESSAGE(!root.empty(),
                    "build with -DCERBERUS_SOURCE_ROOT or set CERBERUS_SOURCE_ROOT to the source");
    const auto queries = loadNamedQueries(root + "/examples/queries.sql");
    REQUIRE(queries.size() == 5);

    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    const core::Usec now = core::SystemClock{}.realtime();
    const core::Usec day_start = std::stoll(scalar(db,
                                                   "SELECT strftime('%s', 'now', 'start of "
                                                   "day')")) *
                                 core::USEC_PER_SEC;
    // Recent rows sit within the last second so "today" holds them except in the first
    // second of a UTC day.
    const auto recent = [&](int i) { return now - 1000 + i; };
    store::HistoryWriter writer(db);
    auto add = [&](core::Transition t) { writer.add(std::move(t)); };
    // Yesterday is also more than an hour ago.
    const core::Usec yesterday = day_start - core::USEC_PER_HOUR;
    // demo-crashloop: 3 crashes and 3 restarts now, one of each yesterday; exit 3 last.
    add(crash("demo-crashloop.service", yesterday, 1));
    add(transition("demo-crashloop.service", core::Event::Restart, yesterday));
    for (int i = 0; i < 3; ++i) {
        add(crash("demo-crashloop.service", recent(2 * i), 3));
        add(transition("demo-crashloop.service", core::Event::Restart, recent(2 * i + 1)));
    }
    auto killed = crash("flaky.service", recent(10), 9);
    killed.result = "signal";
    killed.exit_code = "killed";
    add(killed);
    add(transition("flaky.service", core::Event::Restart, recent(11)));
    add(crash("flaky.service", recent(12), 1));
    add(crash("flaky.service", yesterday, 1));
    add(transition("flaky.service", core::Event::GiveUp, recent(13)));
    add(transition("old.service", core::Event::GiveUp, now - 2 * core::USEC_PER_DAY));
    auto clean = transition("demo-crashloop.service", core::Event::Start, recent(20));
    clean.active_state = "active";
    add(clean);
    REQUIRE(writer.flush().ok());

    const std::map<std::string, Rows> expected{
        {"restarts-last-hour", {{"demo-crashloop.service", "3"}, {"flaky.service", "1"}}},
        {"last-exit", {{"crash", "exit-code", "exited", "3"}}},
        {"gave-up-last-day", {{"flaky.service", "1"}}},
        {"crashes-today",
         {{"demo-crashloop.service", "exit-code", "exited", "3", "3"},
          {"flaky.service", "exit-code", "exited", "1", "1"},
          {"flaky.service", "signal", "killed", "9", "1"}}},
        {"crash-looping", {{"demo-crashloop.service", "3"}}},
    };
    for (const auto& [name, want] : expected) {
        CAPTURE(name);
        REQUIRE(queries.contains(name));
        auto rows = runSingleStatement(db.handle(), queries.at(name));
        // Queries may append readable columns (times); compare the leading ones.
        for (auto& row : rows)
            if (!want.empty() && row.size() > want[0].size()) row.resize(want[0].size());
        CHECK(rows == want);
    }
}

TEST_CASE("an alert's outbox rows commit with it, load as pending, and take delivery outcomes") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::AlertWrite fire;
    fire.kind = store::AlertWrite::Kind::Fire;
    fire.rule = "crashloop";
    fire.unit = "web.service";
    fire.host = "h";
    fire.severity = "critical";
    fire.count = 3;
    fire.started_usec = 1000;
    fire.at_usec = 2000;
    fire.notifications = {{"hook", "trigger", "{\"a\":1}"}, {"log", "trigger", "{\"a\":1}"}};
    writer.addAlert(fire);
    const auto flushed = writer.flush();
    REQUIRE(flushed.ok());
    CHECK(flushed.value().notifications == 2);

    const auto pending = store::loadPendingNotifications(db).value();
    REQUIRE(pending.size() == 2);
    CHECK(pending[0].receiver == "hook");
    CHECK(pending[0].action == "trigger");
    CHECK(pending[0].payload == "{\"a\":1}");
    CHECK(pending[0].created_usec == 2000);
    CHECK(pending[0].alert_id == store::queryAlerts(db, "firing").at(0).id);
    CHECK(store::loadPendingNotifications(db, pending[0].id).value().size() == 1);
    CHECK(store::firingTriggers(db).size() == 2);

    store::OutboxUpdate sent;
    sent.id = pending[0].id;
    sent.status = "sent";
    sent.attempts = 2;
    sent.sent_usec = 3000;
    writer.updateNotification(sent);
    store::AlertWrite resolve = fire;
    resolve.kind = store::AlertWrite::Kind::Resolve;
    resolve.at_usec = 4000;
    resolve.notifications = {{"hook", "resolve", "{\"a\":2}"}};
    writer.addAlert(resolve);
    REQUIRE(writer.flush().ok());

    const auto left = store::loadPendingNotifications(db).value();
    REQUIRE(left.size() == 2);
    CHECK(left[0].receiver == "log");
    CHECK(left[1].action == "resolve");
    CHECK(left[1].alert_id == pending[0].alert_id);
    CHECK(store::firingTriggers(db).empty());
    const auto counts = store::countNotifications(db).value();
    CHECK(counts.at("sent") == 1);
    CHECK(counts.at("pending") == 2);
}

TEST_CASE("the checkpoint thread checkpoints a WAL past 1000 pages; the rows stay intact") {
    TempDir dir;
    const auto path = dir.file("history.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    store::Checkpointer checkpointer(db);
    REQUIRE(sqlite3_exec(db.handle(), "CREATE TABLE scratch (b BLOB)", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    // Each commit adds at least one 4 KiB page to the WAL.
    const auto insert = [&](int commits) {
        for (int i = 0; i < commits; ++i)
            REQUIRE(sqlite3_exec(db.handle(), "INSERT INTO scratch VALUES (zeroblob(4000))",
                                 nullptr, nullptr, nullptr) == SQLITE_OK);
    };
    insert(1500);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (checkpointer.completed() == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(checkpointer.completed() > 0);
    CHECK_FALSE(checkpointer.takeFailure().has_value());
    insert(1500);

    sqlite3_stmt* count = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.handle(), "SELECT count(*) FROM scratch", -1, &count, nullptr) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(count) == SQLITE_ROW);
    CHECK(sqlite3_column_int(count, 0) == 3000);
    sqlite3_finalize(count);
}

TEST_CASE("appended transitions stay marked unevaluated until a flush clears them") {
    TempDir tmp;
    auto db = Database::open(tmp.file("h.db"), OpenMode::ReadWrite);
    core::Transition t;
    t.unit = "job";
    t.event = core::Event::Crash;
    t.source = core::Source::Emit;
    t.ts_usec = 10;
    store::HistoryWriter writer(db);
    writer.add(t);
    REQUIRE(writer.flush().ok());
    t.ts_usec = 20;
    store::appendUnevaluated(db, {t, t});
    const auto marked = store::loadUnevaluated(db);
    REQUIRE(marked.size() == 2);
    CHECK(marked[0].id < marked[1].id);
    CHECK(core::toString(marked[0].transition.source) == "emit");
    REQUIRE(store::lastTransition(db, "job"));
    CHECK(store::lastTransition(db, "job")->ts_usec == 20);
    CHECK_FALSE(store::lastTransition(db, "other"));

    int evaluated = 0;
    store::forEachTransition(
        db, std::nullopt, std::nullopt, [&](const core::Transition&) { return ++evaluated > 0; },
        true);
    CHECK(evaluated == 1);

    writer.markEvaluated(marked[0].id);
    REQUIRE(writer.flush().ok());
    CHECK(store::loadUnevaluated(db).size() == 1);
    // Pruning a transition drops its mark with it.
    CHECK(store::pruneTransitions(db, 100).value() == 3);
    CHECK(scalar(db, "SELECT count(*) FROM unevaluated") == "0");
}

TEST_CASE("a deleted database is restored from the open connection and written on") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    store::Checkpointer checkpointer(db);
    store::HistoryWriter writer(db);
    writer.add(crash("web.service", T0, 3));
    REQUIRE(writer.flush().ok());
    CHECK(db.checkFile() == store::FileState::Same);

    // The file alone goes; its -wal (holding the row) and -shm stay behind.
    REQUIRE(::unlink(path.c_str()) == 0);
    CHECK(db.checkFile() == store::FileState::Deleted);
    const auto before = db.generation();
    checkpointer.stop();
    REQUIRE(db.restore().ok());
    checkpointer.start();
    CHECK(db.checkFile() == store::FileState::Same);
    CHECK(db.generation() == before + 1);
    CHECK_FALSE(fs::exists(path + ".restoring"));
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    // The writer prepares its statements again on the new connection.
    writer.add(crash("web.service", T0 + 1, 4));
    REQUIRE(writer.flush().ok());
    auto reader = Database::open(path, OpenMode::ReadOnly);
    CHECK(store::queryHistory(reader, {}).size() == 2);
    CHECK(scalar(reader, "PRAGMA integrity_check") == "ok");
}

TEST_CASE("another file at the database's path is Replaced and left alone") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = Database::open(path, OpenMode::ReadWrite);
    const auto other = dir.file("other");
    std::ofstream(other) << "not ours";
    REQUIRE(::rename(other.c_str(), path.c_str()) == 0);
    CHECK(db.checkFile() == store::FileState::Replaced);
    CHECK(readBytes(path) == "not ours");
}

TEST_CASE("a second writer lock on a database is refused naming the holder's PID") {
    TempDir dir;
    const auto path = dir.file("c.db");
    {
        auto lock = store::WriterLock::acquire(path);
        struct stat st {};
        REQUIRE(::stat(store::WriterLock::pathOf(path).c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        CHECK(readBytes(store::WriterLock::pathOf(path)) == std::to_string(::getpid()) + "\n");
        try {
            store::WriterLock::acquire(path);
            FAIL("a second exclusive lock was granted");
        } catch (const core::Error& e) {
            CHECK(e.code() == core::ExitCode::Held);
            CHECK(std::string(e.what()).find("held by cerberus PID " +
                                             std::to_string(::getpid())) != std::string::npos);
        }
        store::LockHolder holder;
        CHECK_FALSE(store::WriterLock::tryShared(path, holder).has_value());
        CHECK(holder.pid == ::getpid());
        CHECK_FALSE(holder.stopping);
        lock.markStopping();
        CHECK_FALSE(store::WriterLock::tryShared(path, holder).has_value());
        CHECK(holder.stopping);
    }
    // Released with its holder: an append and then a daemon may take it.
    store::LockHolder holder;
    { CHECK(store::WriterLock::tryShared(path, holder).has_value()); }
    CHECK_NOTHROW(store::WriterLock::acquire(path));
}

TEST_CASE("a read the daemon makes at run time returns its failure, never an empty list") {
    TempDir dir;
    auto db = Database::open(dir.file("c.db"), OpenMode::ReadWrite);
    store::addSilence(db, {0, "web*", "", 1000, 2000, "deploy"});
    REQUIRE(store::listSilences(db, false, 1500).value().size() == 1);
    REQUIRE(sqlite3_exec(db.handle(), "ALTER TABLE silences RENAME TO hidden", nullptr, nullptr,
                         nullptr) == SQLITE_OK);

    const auto silences = store::listSilences(db, true, 1500);
    REQUIRE_FALSE(silences.ok());
    CHECK(silences.error() == "cannot prepare a statement on database '" + dir.file("c.db") +
                                  "': no such table: silences; the file may come from another "
                                  "program, pass --db");
    // The cli turns the same failure into its exit code, with the same sentence.
    try {
        (void)store::listSilences(db, false, 1500).orThrow();
        FAIL("listSilences did not throw");
    } catch (const core::Error& e) {
        CHECK(e.code() == core::ExitCode::Database);
        CHECK(std::string(e.what()) == silences.error());
    }

    REQUIRE(sqlite3_exec(db.handle(), "ALTER TABLE notifications RENAME TO hidden_outbox", nullptr,
                         nullptr, nullptr) == SQLITE_OK);
    const auto pending = store::loadPendingNotifications(db);
    REQUIRE_FALSE(pending.ok());
    CHECK(pending.error().find("no such table: notifications") != std::string::npos);
    const auto counts = store::countNotifications(db);
    REQUIRE_FALSE(counts.ok());
    CHECK(counts.error().find("no such table: notifications") != std::string::npos);
}
