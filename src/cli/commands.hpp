#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"
#include "ingest/emit.hpp"
#include "rules/rules.hpp"

namespace cerberus::cli {

// What a parsed subcommand does; returns the process exit code. Errors that end the
// command travel up as core::Error and main() turns them into one line and an exit code.
using Action = std::function<int()>;

// A subcommand and the options its parser fills in: shared, because the parser writes them
// during parse() and the action reads them after it.
template <typename Options>
struct Command {
    CLI::App* cmd;
    std::shared_ptr<Options> options;
};

// What `cerberus NAME --help` says of a subcommand: one line under its name, and the
// paragraph after its options (none when empty).
struct CommandHelp {
    std::string_view name;
    std::string_view description;
    std::string_view footer = {};
};

template <typename Options>
Command<Options> addCommand(CLI::App& parent, const CommandHelp& help) {
    CLI::App* cmd = parent.add_subcommand(std::string(help.name), std::string(help.description));
    if (!help.footer.empty()) cmd->footer(std::string(help.footer));
    return {cmd, std::make_shared<Options>()};
}

// When `cmd` is the command given, the action becomes run(*options).
template <typename Options>
void setAction(CLI::App* cmd, Action& action, std::shared_ptr<Options> options,
               int (*run)(const Options&)) {
    cmd->callback([&action, options, run] { action = [options, run] { return run(*options); }; });
}

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

// A command on the history database: addCommand(), with `--db FILE` (addDbOption) into
// `options->db` as its first option.
template <typename Options>
Command<Options> addDbCommand(CLI::App& parent, const CommandHelp& help) {
    Command<Options> command = addCommand<Options>(parent, help);
    addDbOption(command.cmd, command.options->db);
    return command;
}

// Flushes standard output; a failed write (a full disk, a closed pipe) is an error, not a
// silent truncation. `what` names what was being written.
void finishOutput(const std::string& what);

// Options that may stand before the subcommand as well as after it (`cerberus --db X
// silence add`): they are moved to follow the subcommand's name (its action's, for silence).
std::vector<std::string> hoistGlobalOptions(const CLI::App& app, std::vector<std::string> args);

// A time given as `flag` (core::parseTimeArg); a bad one throws core::Error(Usage) naming the
// flag and what to write instead.
std::optional<core::Usec> timeOption(std::string_view flag, const std::optional<std::string>& text,
                                     core::Usec now_usec);
struct TimeRange {
    std::optional<core::Usec> since_usec;
    std::optional<core::Usec> until_usec;
};
// --since and --until, the first not later than the second.
TimeRange timeRange(const std::optional<std::string>& since,
                    const std::optional<std::string>& until, core::Usec now_usec);
// A non-zero duration given as `flag` (core::parseDuration), else core::Error(Usage).
core::Usec durationOption(std::string_view flag, const std::string& text);

// `-S/--since T` and `-U/--until T`, as journalctl spells them.
void addTimeRangeOptions(CLI::App* cmd, std::optional<std::string>& since,
                         std::optional<std::string>& until, const std::string& since_help,
                         const std::string& until_help);
// `-u/--unit GLOB`, repeatable, as journalctl spells it.
void addUnitOption(CLI::App* cmd, std::vector<std::string>& units, const std::string& help);
// `--utc`: tables print times in UTC rather than in the local time zone.
void addUtcFlag(CLI::App* cmd, bool& utc);

// Rows of cells printed as left-aligned columns, two spaces apart.
using Table = std::vector<std::vector<std::string>>;
// The widest cell of each column.
std::vector<std::size_t> columnWidths(const Table& rows);
std::string formatTable(const Table& rows, const std::vector<std::size_t>& width);
inline std::string formatTable(const Table& rows) { return formatTable(rows, columnWidths(rows)); }

// JSON for standard output (indent -1: one line); text that is not UTF-8 is replaced.
std::string jsonText(const nlohmann::ordered_json& value, int indent = 2);
// Writes to standard output; finishOutput() says whether it all went out.
void writeOut(const std::string& text);

// The rule files and directories `given` (--rules), else DESIGN.md's default:
// /etc/cerberus/rules if present, else the shipped rules/default.json (installed, or in the
// source tree when run from a build directory).
std::vector<std::string> rulesPaths(const std::vector<std::string>& given);

// `--rules`, repeatable, whose absence means the default rules (rulesPaths()).
CLI::Option* addRulesOption(CLI::App* cmd, std::vector<std::string>& rules);

}  // namespace cerberus::cli
