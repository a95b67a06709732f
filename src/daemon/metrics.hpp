#pragma once

// /metrics: the event loop publishes a snapshot of its counters; a small HTTP server on a
// thread of its own renders the latest one in Prometheus text format. The loop never waits
// for a scrape: publishing swaps a pointer under a mutex. The server holds at most
// METRICS_CONNECTIONS_MAX connections (so a few file descriptors, whatever clients do), and
// each has METRICS_REQUEST_TIMEOUT_USEC from accept to its answer written, then it is closed.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::daemon {

inline constexpr std::size_t METRICS_CONNECTIONS_MAX = 16;
inline constexpr core::Usec METRICS_REQUEST_TIMEOUT_USEC = 2 * core::USEC_PER_SEC;

struct MetricsAddress {
    std::string host;  // a name or an address; IPv6 without the brackets
    int port = 0;
    std::string describe() const;  // as the operator wrote it: "127.0.0.1:9469", "[::1]:9469"
};

// "HOST:PORT" or "[IPV6]:PORT" with a port from 1 to 65535; nullopt otherwise.
std::optional<MetricsAddress> parseMetricsAddress(std::string_view text);

// Outcomes of delivery attempts, as the notifications counter labels them.
inline constexpr std::string_view OUTCOME_SENT = "sent";
inline constexpr std::string_view OUTCOME_RETRIED = "retried";  // failed, tried again later
inline constexpr std::string_view OUTCOME_FAILED = "failed";    // refused, or given up

struct MetricsSnapshot {
    std::map<std::pair<core::Event, core::Source>, std::uint64_t> transitions;
    std::uint64_t transitions_dropped = 0;
    std::map<std::string, std::size_t> alerts_firing;  // by rule; every loaded rule is listed
    // By (receiver, outcome); every configured receiver is listed with each outcome.
    std::map<std::pair<std::string, std::string>, std::uint64_t> notifications;
    std::optional<std::int64_t> outbox_pending;  // nullopt when the outbox could not be read
    std::size_t units_tracked = 0;
    bool bus_connected = false;
    std::optional<core::Usec> last_reconcile_usec;  // wall clock
};

// Prometheus text format 0.0.4, with HELP and TYPE lines.
std::string renderMetrics(const MetricsSnapshot& snapshot);

class MetricsServer {
public:
    // Binds and listens at once, so that a port in use stops the start-up. Throws
    // core::Error(ExitCode::Failure) naming the address and the reason.
    explicit MetricsServer(const MetricsAddress& address);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Starts answering GET (and HEAD) /metrics on a thread that takes no signal. Scrapers
    // that connect earlier wait in the listen backlog.
    void start();
    void publish(MetricsSnapshot snapshot);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cerberus::daemon
