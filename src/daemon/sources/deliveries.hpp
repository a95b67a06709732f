#pragma once

// Delivering the outbox: the libcurl transfers under way, the committed rows handed to the
// dispatcher, and what became of each attempt, written back to its row and counted.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "daemon/event_loop.hpp"
#include "store/store.hpp"

namespace cerberus::notify {
class Dispatcher;
class HttpClient;
}  // namespace cerberus::notify

namespace cerberus::daemon {

// Outcomes of deliveries and the outbox's depth, for the store and for /metrics.
class DeliveryLog {
public:
    using OnChange = std::function<void()>;  // what /metrics and STATUS= show changed
    DeliveryLog(store::Database& db, store::HistoryWriter& writer, OnChange on_change)
        : db_(db), writer_(writer), on_change_(std::move(on_change)) {}

    // Writes the outcome to its row in the next flush and counts it.
    void record(const std::string& receiver, std::string_view outcome, store::OutboxUpdate update);
    // Records every outcome the dispatcher has.
    void collect(notify::Dispatcher& dispatcher);
    // A flush committed rows to the outbox or updated some: countOutbox() reads it again.
    void outboxChanged() { outbox_changed_ = true; }
    // Reads the number of pending rows again if the outbox changed; a failed read shows as
    // unknown, never as an empty outbox.
    void countOutbox();

    using Counts = std::map<std::pair<std::string, std::string>, std::uint64_t>;
    const Counts& notifications() const { return notifications_; }  // by (receiver, outcome)
    std::optional<std::int64_t> outboxPending() const { return outbox_pending_; }

private:
    store::Database& db_;
    store::HistoryWriter& writer_;
    OnChange on_change_;
    Counts notifications_;
    std::optional<std::int64_t> outbox_pending_;  // nullopt: could not be read
    bool outbox_changed_ = true;
};

// The HTTP transfers: libcurl's fd and timer.
class Transfers final : public EventSource {
public:
    Transfers(notify::HttpClient& http, notify::Dispatcher& dispatcher, DeliveryLog& log)
        : http_(http), dispatcher_(dispatcher), log_(log) {}
    std::optional<Watch> watch() const override;
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;
    // At shutdown: requests already on the wire get until `give_up_at` (monotonic) to finish;
    // what does not stays pending in the outbox and is sent again (same id) by the next start.
    void drain(core::Usec give_up_at, const core::Clock& clock);

private:
    notify::HttpClient& http_;
    notify::Dispatcher& dispatcher_;
    DeliveryLog& log_;
};

// Hands the rows each flush commits to the outbox to the dispatcher, and starts what is due.
class OutboxFeeder final : public EventSource {
public:
    OutboxFeeder(store::Database& db, notify::Dispatcher& dispatcher, DeliveryLog& log,
                 const core::Clock& clock)
        : db_(db), dispatcher_(dispatcher), log_(log), clock_(clock) {}
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;
    // Rows were committed: the next wake reads them.
    void markStale() { stale_ = true; }
    // Loads the rows committed since the last load (start-up calls it before the loop).
    void load();

private:
    void failUnreadable(const store::PendingNotification& row);

    store::Database& db_;
    notify::Dispatcher& dispatcher_;
    DeliveryLog& log_;
    const core::Clock& clock_;
    std::int64_t loaded_ = 0;  // the highest row id handed to the dispatcher
    bool stale_ = true;
};

}  // namespace cerberus::daemon
