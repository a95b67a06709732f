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
};

// Runs until SIGTERM or SIGINT and returns the exit code (0 after a clean stop). Start-up
// failures throw core::Error, before anything is written: ExitCode::Failure for invalid
// rules or a --metrics address that cannot be bound, ExitCode::Bus when systemd cannot be
// followed, ExitCode::Database when the store cannot open.
int run(const Options& options);

}  // namespace cerberus::daemon
