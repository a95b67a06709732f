#pragma once

// What the daemon tells systemd and /metrics: STATUS= and the /metrics snapshot when
// something changed, WATCHDOG=1 at half the watchdog interval, and the heartbeat that
// records in the database that the daemon was watching.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "daemon/event_loop.hpp"
#include "daemon/metrics.hpp"

namespace cerberus::store {
class HistoryWriter;
}
namespace cerberus::ingest {
class SystemdSource;
}

namespace cerberus::daemon {

class Alerting;
class DeliveryLog;
class StoreSink;

// One sd_notify(3) message; sdNotify() sends it, tests record it.
using Notify = std::function<void(const std::string&)>;
void sdNotify(const std::string& message);

// Half of $WATCHDOG_USEC when systemd set a watchdog on this service; nullopt otherwise.
std::optional<core::Usec> watchdogInterval();

class Watchdog final : public EventSource {
public:
    // Without `every`, never pings.
    Watchdog(std::optional<core::Usec> every, Notify notify)
        : every_(every), notify_(std::move(notify)) {}
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;

private:
    std::optional<core::Usec> every_;
    Notify notify_;
    core::Usec next_at_ = 0;  // the first wake pings
};

inline constexpr core::Usec HEARTBEAT_EVERY_USEC = 60 * core::USEC_PER_SEC;

// A flush records the heartbeat; on a quiet host the heartbeat makes one at most every
// minute. It has no deadline of its own: it rides on the wakes other sources bring.
class Heartbeat final : public EventSource {
public:
    explicit Heartbeat(store::HistoryWriter& writer) : writer_(writer) {}
    std::optional<core::Usec> deadline(core::Usec /*now*/) const override { return std::nullopt; }
    void onWake(core::Usec now) override;

private:
    store::HistoryWriter& writer_;
    core::Usec next_at_ = 0;
};

// STATUS= and /metrics, republished only when what they show changed: the counters below
// are compared at each wake; markChanged() says what they cannot see (a tick, a reload,
// delivery outcomes, a new outbox depth).
class StatusPublisher final : public EventSource {
public:
    struct Sources {
        const StoreSink& sink;
        const store::HistoryWriter& writer;
        const ingest::SystemdSource& bus;
        const Alerting& alerting;
        const DeliveryLog& deliveries;
        MetricsServer* metrics;  // null without --metrics
    };
    StatusPublisher(Sources sources, std::string bus_name, const core::Clock& clock, Notify notify)
        : in_(sources), bus_name_(std::move(bus_name)), clock_(clock), notify_(std::move(notify)) {}

    std::optional<core::Usec> deadline(core::Usec /*now*/) const override { return std::nullopt; }
    void onWake(core::Usec now) override;
    void markChanged() { changed_ = true; }
    // The outcome of loading the rules, for /metrics: at start-up and at each SIGHUP.
    void rulesAccepted(core::Usec now_realtime) {
        rules_reload_.accepted(now_realtime);
        changed_ = true;
    }
    void rulesRefused() {
        rules_reload_.refused();
        changed_ = true;
    }
    // Once per iteration and at start-up; cheap unless something changed.
    void publish();

private:
    struct Seen {
        std::uint64_t transitions = 0;
        std::uint64_t dropped = 0;
        std::uint64_t reconciles = 0;
        std::uint64_t ends_guessed = 0;
        std::size_t units = 0;
        bool connected = false;
        bool operator==(const Seen&) const = default;
    };
    void status(std::size_t firing);
    void warnGuessedEnds(std::uint64_t guessed_before) const;
    MetricsSnapshot snapshot(std::map<std::string, std::size_t> firing) const;

    Sources in_;
    RulesReload rules_reload_;
    std::string bus_name_;
    const core::Clock& clock_;
    Notify notify_;
    Seen seen_;
    bool changed_ = true;
    std::string status_;
    std::optional<core::Usec> last_reconcile_usec_;
};

}  // namespace cerberus::daemon
