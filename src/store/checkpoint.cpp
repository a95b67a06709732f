#include "store/checkpoint.hpp"

#include <sqlite3.h>

#include <utility>

#include "core/thread.hpp"

namespace cerberus::store {

namespace {

// SQLite's own default for wal_autocheckpoint.
constexpr int CHECKPOINT_PAGES = 1000;
constexpr int CHECKPOINT_WRITER_PAGES = 10 * CHECKPOINT_PAGES;

}  // namespace

Checkpointer::Checkpointer(Database& db) : db_(db) { start(); }

Checkpointer::~Checkpointer() { stop(); }

void Checkpointer::start() {
    if (own_ != nullptr) return;
    if (sqlite3_open_v2(db_.path().c_str(), &own_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        // Without a second connection the writer keeps checkpointing by itself. Closing a
        // connection that failed to open only frees its memory: nothing to check.
        (void)sqlite3_close_v2(own_);
        own_ = nullptr;
        return;
    }
    // Always SQLITE_OK on an open connection.
    (void)sqlite3_busy_timeout(own_, 5000);
    stop_ = false;
    // Replaces the automatic checkpoint the writer's commits would otherwise run. Returns the
    // previous hook's argument, not an error.
    (void)sqlite3_wal_hook(db_.handle(), &Checkpointer::onCommit, this);
    thread_ = core::startThreadWithoutSignals([this] { work(); });
}

void Checkpointer::stop() {
    if (own_ == nullptr) return;
    (void)sqlite3_wal_hook(db_.handle(), nullptr, nullptr);  // the previous hook's argument
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    (void)sqlite3_close_v2(own_);  // deferred until its statements are gone; always succeeds
    own_ = nullptr;
    // What is left in the WAL is checkpointed by the writer's close.
}

int Checkpointer::onCommit(void* self, sqlite3* db, const char* name, int pages) {
    auto* checkpointer = static_cast<Checkpointer*>(self);
    // A thread that never catches up (writes without pause, or a reader pinning old frames)
    // must not let the WAL grow without bound: past ten times the mark the writer
    // checkpoints itself, as SQLite would have done all along.
    if (pages >= CHECKPOINT_WRITER_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        return SQLITE_OK;
    }
    if (pages >= CHECKPOINT_PAGES) {
        {
            std::lock_guard lock(checkpointer->mutex_);
            checkpointer->due_ = true;
        }
        checkpointer->wake_.notify_one();
    }
    return SQLITE_OK;
}

std::uint64_t Checkpointer::completed() {
    std::lock_guard lock(mutex_);
    return completed_;
}

std::optional<Failure> Checkpointer::takeFailure() {
    std::lock_guard lock(mutex_);
    return std::exchange(failure_, std::nullopt);
}

void Checkpointer::work() {
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait(lock, [this] { return due_ || stop_; });
        if (stop_) return;
        due_ = false;
        lock.unlock();
        // PASSIVE never blocks the writer: it copies what no reader still needs.
        const int rc =
            sqlite3_wal_checkpoint_v2(own_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        lock.lock();
        if (rc == SQLITE_OK) ++completed_;
        if (rc != SQLITE_OK && rc != SQLITE_BUSY) failure_ = Failure{sqlite3_errmsg(own_)};
    }
}

}  // namespace cerberus::store
