#pragma once

// The running daemon: one epoll loop over the bus, a signalfd and deadlines; the WAL
// checkpoints run beside it on a thread of their own (store/checkpoint.hpp).

#include <optional>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "daemon/metrics.hpp"

namespace cerberus::daemon {

struct Options {
    std::string db_path;
    std::string bus;                        // "system", "user" or a D-Bus address
    std::optional<core::Usec> keep_usec;    // prune transitions older than this
    std::vector<std::string> rules_paths;   // files and directories of *.json
    std::optional<MetricsAddress> metrics;  // serve /metrics there
    // The `cerberus emit` socket: empty for ingest::defaultSocketPath(), which is best
    // effort (a failure is logged and the daemon runs without it); "none" for no socket.
    std::string emit_socket;
    std::string emit_group;  // may feed events besides root; empty: none
};

// Runs until SIGTERM or SIGINT and returns the exit code (0 after a clean stop). Start-up
// failures throw core::Error, before anything is written: ExitCode::Failure for invalid
// rules, a --metrics address that cannot be bound or an --emit-socket that cannot listen,
// ExitCode::Usage for an unknown --emit-group, ExitCode::Bus when systemd cannot be
// followed, ExitCode::Database when the store cannot open.
int run(const Options& options);

}  // namespace cerberus::daemon
