#pragma once

// The daemon's WAL checkpoints, away from its commits.

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "store/store.hpp"

namespace cerberus::store {

// Moves WAL checkpoints off the writer's commits: a thread with its own connection runs a
// passive checkpoint whenever the WAL has grown past SQLite's usual 1000 pages, so a
// commit never waits for the fsync of a checkpoint. Past 10000 pages (the thread cannot
// keep up) and without a second connection, the writer checkpoints itself as usual.
class Checkpointer {
public:
    explicit Checkpointer(Database& db);
    Checkpointer(const Checkpointer&) = delete;
    Checkpointer& operator=(const Checkpointer&) = delete;
    ~Checkpointer();

    // Stops the thread and closes its connection (before Database::restore()), and starts
    // them again on the database's current file.
    void stop();
    void start();

    // Checkpoints the thread has run to the end.
    std::uint64_t completed();
    // The last checkpoint failure since the previous call; nullopt when there was none.
    std::optional<Failure> takeFailure();

private:
    static int onCommit(void* self, sqlite3* db, const char* name, int pages);
    void work();

    Database& db_;
    sqlite3* own_ = nullptr;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool due_ = false;
    bool stop_ = false;
    std::optional<Failure> failure_;
    std::uint64_t completed_ = 0;
};

}  // namespace cerberus::store
