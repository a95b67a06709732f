#include "daemon/sources/flusher.hpp"

#include <unistd.h>

#include "core/text.hpp"
#include "daemon/log_line.hpp"
#include "store/checkpoint.hpp"

namespace cerberus::daemon {

using core::Priority;
using core::Usec;
using detail::logLine;

Flusher::Flusher(store::Database& db, store::HistoryWriter& writer,
                 store::Checkpointer& checkpointer, OnFlushed on_flushed, OnEmpty on_empty)
    : db_(db),
      writer_(writer),
      checkpointer_(checkpointer),
      on_flushed_(std::move(on_flushed)),
      on_empty_(std::move(on_empty)) {}

std::optional<Usec> Flusher::deadline(Usec /*now*/) const {
    if (writer_.pending() == 0) return std::nullopt;
    return flush_at_;
}

void Flusher::onWake(Usec now) {
    flush(now);
    if (writer_.pending() == 0 && on_empty_) on_empty_();
}

void Flusher::flush(Usec now) {
    if (writer_.pending() == 0 || now < flush_at_) return;
    if (!ownFile()) {
        flush_at_ = now + backoff_.next();
        return;
    }
    const auto result = writer_.flush();
    if (result.ok())
        flushed(result.value());
    else
        failed(result.error(), now);
    reportDropped();
}

bool Flusher::drain(Usec give_up_at, const core::Clock& clock) {
    while (writer_.pending() > 0 && clock.monotonic() < give_up_at) {
        if (ownFile() && writer_.flush().ok()) break;
        // An interrupted pause only retries sooner.
        (void)usleep(static_cast<useconds_t>(RETRY_MIN_USEC));
    }
    if (writer_.pending() > 0) return false;
    if (on_empty_) on_empty_();
    return true;
}

void Flusher::flushed(const store::Flushed& result) {
    if (on_flushed_) on_flushed_(result);
    if (failing())
        logLine(Priority::Notice, "writing to '%s' again; the queued transitions are stored",
                db_.path().c_str());
    flush_failing_ = false;
    file_failing_ = false;
    backoff_.reset();
    flush_at_ = 0;
    reportCheckpoint();
}

void Flusher::failed(const std::string& error, Usec now) {
    if (!flush_failing_)
        logLine(Priority::Err, "cannot write to '%s': %s; keeping %s queued and retrying",
                db_.path().c_str(), error.c_str(),
                core::plural(writer_.pending(), "change").c_str());
    flush_failing_ = true;
    flush_at_ = now + backoff_.next();
}

void Flusher::reportCheckpoint() {
    const auto failure = checkpointer_.takeFailure();
    if (failure && !checkpoint_failing_)
        logLine(Priority::Warning,
                "cannot checkpoint '%s': %s; its -wal file grows until a checkpoint succeeds",
                db_.path().c_str(), failure->message.c_str());
    checkpoint_failing_ = failure.has_value();
}

void Flusher::reportDropped() {
    if (writer_.dropped() == dropped_reported_) return;
    logLine(Priority::Err, "the write queue is full: %s dropped so far",
            core::plural(writer_.dropped(), "transition").c_str());
    dropped_reported_ = writer_.dropped();
}

// Checked with one stat() before each flush. A deleted file is put back from the open
// connection, so nothing stored is lost. Another file there is not ours to write: the queue
// waits.
bool Flusher::ownFile() {
    switch (db_.checkFile()) {
    case store::FileState::Same:
    case store::FileState::Unknown:  // cannot tell; the open connection still works
        return true;
    case store::FileState::Deleted: return restore();
    case store::FileState::Replaced:
        if (!file_failing_)
            logLine(Priority::Err,
                    "database '%s' was replaced by another file while cerberus ran; not writing "
                    "to it, keeping %s queued and retrying: remove the new file to have "
                    "cerberus restore its own, or restart cerberus to use the new one",
                    db_.path().c_str(), core::plural(writer_.pending(), "change").c_str());
        file_failing_ = true;
        return false;
    }
    return false;
}

bool Flusher::restore() {
    checkpointer_.stop();
    const auto restored = db_.restore();
    checkpointer_.start();
    if (restored.ok()) {
        logLine(Priority::Warning,
                "database '%s' was deleted while cerberus ran; restored it from the open "
                "connection, nothing is lost",
                db_.path().c_str());
        return true;
    }
    if (!file_failing_)
        logLine(Priority::Err,
                "database '%s' was deleted while cerberus ran: %s; keeping %s queued "
                "and retrying",
                db_.path().c_str(), restored.error().c_str(),
                core::plural(writer_.pending(), "change").c_str());
    file_failing_ = true;
    return false;
}

}  // namespace cerberus::daemon
