#pragma once

// Commits what the history writer queued, once the loop has drained its input, and keeps it
// queued (retrying with a backoff) while the database cannot take it: locked, full, deleted
// or replaced by another file.

#include <functional>

#include "daemon/event_loop.hpp"
#include "daemon/sources/backoff.hpp"
#include "store/store.hpp"

namespace cerberus::store {
class Checkpointer;
}

namespace cerberus::daemon {

class Flusher final : public EventSource {
public:
    using OnFlushed = std::function<void(const store::Flushed&)>;
    using OnEmpty = std::function<void()>;

    // `on_flushed` runs after each successful commit; `on_empty` at the end of each wake
    // that leaves nothing queued (what was delivered is stored).
    Flusher(store::Database& db, store::HistoryWriter& writer, store::Checkpointer& checkpointer,
            OnFlushed on_flushed = {}, OnEmpty on_empty = {});

    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;

    // One flush if one is due (start-up calls it before the loop runs).
    void flush(core::Usec now);
    // Whether the file at the database's path is still the one this daemon writes; a
    // deleted one is put back from the open connection first.
    bool ownFile();
    bool failing() const { return flush_failing_ || file_failing_; }
    // At shutdown, intake stopped: retries until the queue is stored or `give_up_at`
    // (monotonic) has passed. Whether nothing is left queued.
    bool drain(core::Usec give_up_at, const core::Clock& clock);

private:
    void flushed(const store::Flushed& result);
    void failed(const std::string& error, core::Usec now);
    bool restore();
    void reportCheckpoint();
    void reportDropped();

    store::Database& db_;
    store::HistoryWriter& writer_;
    store::Checkpointer& checkpointer_;
    OnFlushed on_flushed_;
    OnEmpty on_empty_;
    Backoff backoff_;
    core::Usec flush_at_ = 0;
    bool flush_failing_ = false;
    bool file_failing_ = false;  // the database's path holds no file, or another one
    bool checkpoint_failing_ = false;
    std::uint64_t dropped_reported_ = 0;
};

}  // namespace cerberus::daemon
