// Transitions per second through derivation and the durable store (WAL, batched commits),
// against a plain SQLite insert loop on the same schema in the same run.
// Goal (issue 2): at least half of the plain loop's rate.

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ingest/derive.hpp"
#include "store/store.hpp"

using namespace cerberus;

namespace {

constexpr int UNITS = 50;
constexpr int CYCLES_PER_UNIT = 2000;  // each cycle: crash, fail, restart, start (4 rows)
constexpr int SIGNALS_PER_FLUSH = 64;  // what one loop wakeup drains under load

double seconds(std::chrono::steady_clock::time_point since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// The deltas systemd 252 sends for one crash-and-restart cycle of a Restart=always service
// (each change arrives twice, once per interface; here once each, the order kept).
std::vector<ingest::PropertyDelta> cycle(int n, core::Usec& mono) {
    std::vector<ingest::PropertyDelta> out(5);
    mono += 1000;
    out[0].result = "exit-code";
    out[0].exec_main_code = 1;
    out[0].exec_main_status = 3;
    out[0].exec_main_exit_mono = mono;
    out[1].active_state = "failed";
    out[1].sub_state = "failed";
    out[1].state_change_mono = mono;
    out[2].active_state = "activating";
    out[2].sub_state = "auto-restart";
    out[2].state_change_mono = mono + 1;
    out[3].n_restarts = n;
    out[3].result = "success";
    out[3].exec_main_start_mono = mono + 2;
    out[3].exec_main_exit_mono = 0;
    out[4].active_state = "active";
    out[4].sub_state = "running";
    out[4].state_change_mono = mono + 2;
    out[4].invocation_id = std::to_string(n);
    mono += 3;
    return out;
}

std::string tempPath(const char* name) {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir && *dir ? dir : "/tmp") + "/cerberus-bench-" +
                       std::to_string(getpid()) + "-" + name;
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
    return path;
}

void removeDb(const std::string& path) {
    std::remove(path.c_str());
    std::remove((path + "-wal").c_str());
    std::remove((path + "-shm").c_str());
}

double cerberusRate(std::size_t& rows) {
    const auto path = tempPath("ingest.db");
    auto db = store::Database::open(path, store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    std::vector<core::UnitSnapshot> units(UNITS);
    for (int u = 0; u < UNITS; ++u) {
        units[u].unit = "bench@" + std::to_string(u) + ".service";
        units[u].active_state = "active";
        units[u].sub_state = "running";
        units[u].n_restarts = 0;
        units[u].result = "success";
    }
    core::SystemClock clock;
    core::Usec mono = 1;
    int signals = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int c = 1; c <= CYCLES_PER_UNIT; ++c) {
        for (auto& unit : units) {
            for (const auto& delta : cycle(c, mono)) {
                core::UnitSnapshot after = unit;
                ingest::apply(after, delta);
                const ingest::Stamp stamp{clock.realtime(), clock.monotonic(),
                                          core::Source::Systemd};
                for (auto& t : ingest::derive(unit, after, stamp)) {
                    writer.add(std::move(t));
                    ++rows;
                }
                unit = after;
                writer.putUnit(unit);
                if (++signals % SIGNALS_PER_FLUSH == 0 && !writer.flush().ok()) std::abort();
            }
        }
    }
    if (!writer.flush().ok()) std::abort();
    const double rate = static_cast<double>(rows) / seconds(start);
    removeDb(path);
    return rate;
}

// The same rows through a bare prepared INSERT, same batch size, same pragmas.
double plainRate(std::size_t rows_wanted, std::size_t rows_per_batch) {
    const auto path = tempPath("plain.db");
    {
        auto db = store::Database::open(path, store::OpenMode::ReadWrite);  // same schema
    }
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) std::abort();
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr,
                 nullptr);
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db,
                       "INSERT INTO transitions (ts_usec, mono_usec, unit, event, active_state, "
                       "sub_state, result, exit_code, exit_status, n_restarts, invocation_id, "
                       "main_pid, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       -1, &stmt, nullptr);
    const auto start = std::chrono::steady_clock::now();
    std::size_t done = 0;
    while (done < rows_wanted) {
        sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
        for (std::size_t i = 0; i < rows_per_batch && done < rows_wanted; ++i, ++done) {
            const std::string unit = "bench@" + std::to_string(done % UNITS) + ".service";
            sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(done));
            sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(done));
            sqlite3_bind_text(stmt, 3, unit.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(stmt, 4, "crash", -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 5, "failed", -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 6, "failed", -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 7, "exit-code", -1, SQLITE_STATIC);
            sqlite3_bind_text(stmt, 8, "exited", -1, SQLITE_STATIC);
            sqlite3_bind_int(stmt, 9, 3);
            sqlite3_bind_int64(stmt, 10, static_cast<sqlite3_int64>(done));
            sqlite3_bind_text(stmt, 11, "0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
            sqlite3_bind_int(stmt, 12, 4242);
            sqlite3_bind_text(stmt, 13, "systemd", -1, SQLITE_STATIC);
            if (sqlite3_step(stmt) != SQLITE_DONE) std::abort();
            sqlite3_reset(stmt);
        }
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    }
    const double rate = static_cast<double>(rows_wanted) / seconds(start);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    removeDb(path);
    return rate;
}

}  // namespace

int main() {
    std::size_t rows = 0;
    const double ours = cerberusRate(rows);
    const std::size_t flushes =
        static_cast<std::size_t>(UNITS) * CYCLES_PER_UNIT * 5 / SIGNALS_PER_FLUSH;
    const double plain = plainRate(rows, rows / (flushes ? flushes : 1));
    const double ratio = ours / plain;
    std::printf("ingest: %zu transitions (derive + store, WAL, a commit per %d signals)\n", rows,
                SIGNALS_PER_FLUSH);
    std::printf("ingest: cerberus %.0f transitions/s, plain INSERT loop %.0f rows/s\n", ours,
                plain);
    std::printf("ingest: ratio %.2f of the plain loop (goal >= 0.50): %s\n", ratio,
                ratio >= 0.5 ? "met" : "NOT met");
    return 0;
}
