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
#include <unordered_set>
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

// Per-unit series are capped: each unit costs Prometheus two series, and a host that churns
// transient units (systemd-run) would otherwise grow them without bound.
inline constexpr std::size_t METRICS_UNITS_MAX = 1000;

struct UnitCounts {
    std::uint64_t restarts = 0;
    std::uint64_t crashes = 0;
    bool operator==(const UnitCounts&) const = default;
};
using UnitCountsByName = std::map<std::string, UnitCounts>;

// Restarts and crashes per unit, counted from the transitions observed since the daemon
// started (as every Prometheus counter may; process_start_time_seconds tells the reset).
// A unit is listed at 0 from when cerberus first sees it as a service (or as a unit fed by
// `cerberus emit` or supervisord), so that increase() sees its first crash. At most
// `max_units` units are listed: a unit that restarts or crashes takes the place of one
// listed with nothing counted; when every listed unit has counts, it is left out and
// counted in dropped().
class UnitCounters {
public:
    explicit UnitCounters(std::size_t max_units = METRICS_UNITS_MAX) : max_units_(max_units) {}
    void observe(const core::Transition& transition);
    void observe(const core::UnitSnapshot& snapshot);
    // The counts as they are now, shared with snapshots until the next change.
    std::shared_ptr<const UnitCountsByName> counts() const;
    // Units left out since start. Their names are kept to count each once: at most one per
    // unit systemd ever loaded, which ingestion tracks in memory anyway.
    std::uint64_t dropped() const { return dropped_.size(); }

private:
    bool admit(const std::string& unit, bool counted);

    std::size_t max_units_;
    UnitCountsByName counts_;
    std::size_t listed_at_zero_ = 0;
    std::unordered_set<std::string> dropped_;
    mutable std::shared_ptr<const UnitCountsByName> shared_;  // null after a change
};

// Whether the last rule load was accepted, and when one last was: the counterparts of
// prometheus_config_last_reload_successful and its _success_timestamp_seconds.
struct RulesReload {
    bool success = true;  // true at start: the daemon does not start on bad rules
    std::optional<core::Usec> last_success_usec;  // wall clock
    void accepted(core::Usec now) {
        success = true;
        last_success_usec = now;
    }
    void refused() { success = false; }
};

// The standard process_* figures, read from /proc/self when a scrape asks for them.
struct ProcessStats {
    double cpu_seconds = 0;  // user + system
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    double start_time_seconds = 0;  // Unix time
    std::optional<std::uint64_t> open_fds;
    std::optional<std::uint64_t> max_fds;  // the soft RLIMIT_NOFILE
};

// The text of /proc/PID/stat read with the kernel's clock ticks per second, page size and
// boot time (btime of /proc/stat, Unix seconds); nullopt when it does not parse.
std::optional<ProcessStats> parseProcStat(std::string_view stat, long ticks_per_second,
                                          long page_size, double boot_time_seconds);

// This process's figures; nullopt when /proc cannot be read (never zeros instead).
std::optional<ProcessStats> readProcessStats();

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
    // Runs that ended while nobody watched: how each ended read from the manager's journal,
    // or (not there) guessed.
    std::uint64_t unseen_ends_told = 0;
    std::uint64_t unseen_ends_guessed = 0;
    RulesReload rules_reload;
    std::string host;                                     // the unit series' host label
    std::shared_ptr<const UnitCountsByName> unit_counts;  // null: none yet
    std::uint64_t unit_series_dropped = 0;
};

// Prometheus text format 0.0.4, with HELP and TYPE lines; process_* when `process` is given.
std::string renderMetrics(const MetricsSnapshot& snapshot,
                          const std::optional<ProcessStats>& process = std::nullopt);

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
