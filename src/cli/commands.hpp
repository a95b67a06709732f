#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "ingest/emit.hpp"
#include "rules/rules.hpp"

namespace cerberus::cli {

// What a parsed subcommand does; returns the process exit code. Errors that end the
// command travel up as core::Error and main() turns them into one line and an exit code.
using Action = std::function<int()>;

void addRunCommand(CLI::App& app, Action& action);
void addHistoryCommand(CLI::App& app, Action& action);
void addCheckCommand(CLI::App& app, Action& action);
void addAlertsCommand(CLI::App& app, Action& action);
void addReplayCommand(CLI::App& app, Action& action);
void addReportCommand(CLI::App& app, Action& action);
void addSilenceCommand(CLI::App& app, Action& action);
void addTestReceiverCommand(CLI::App& app, Action& action);
void addEmitCommand(CLI::App& app, Action& action);
void addSupervisorListenerCommand(CLI::App& app, Action& action);

// `--socket PATH` (also $CERBERUS_EMIT_SOCKET) and `--db FILE`: where storeEvent() sends.
void addEmitTargetOptions(CLI::App* cmd, std::string& socket, std::string& db);

// Sends an event to the daemon's emit socket (`socket_path`, or the default when empty) and
// waits until it is stored; when no daemon listens (or it is stopping), appends it to the
// existing database `db_path` directly and says so on stderr. Returns the reason when the
// daemon did not answer in time (it may still store the event: sending it again could
// store it twice), else nullopt. Throws core::Error when the event is not stored.
std::optional<std::string> storeEvent(const ingest::EmitRequest& request,
                                      const std::string& socket_path, const std::string& db_path);

// Loads the rules; when they are invalid, prints every error to stderr, one per line as the
// loader words them, and throws core::Error(Failure) with their count.
rules::RuleSet loadRulesOrReport(const std::vector<std::string>& paths);

// DESIGN.md's default: $STATE_DIRECTORY/cerberus.db, else /var/lib/cerberus/cerberus.db
// for root, else $XDG_STATE_HOME/cerberus/cerberus.db.
std::string defaultDbPath();

// `--db FILE`, defaulting to defaultDbPath() (shown in --help).
void addDbOption(CLI::App* cmd, std::string& db);

// Flushes standard output; a failed write (a full disk, a closed pipe) is an error, not a
// silent truncation. `what` names what was being written.
void finishOutput(const std::string& what);

// DESIGN.md's default: /etc/cerberus/rules if present, else the shipped rules/default.json
// (installed, or in the source tree when run from a build directory).
std::vector<std::string> defaultRulesPaths();

}  // namespace cerberus::cli
