#include <unistd.h>

#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "daemon/daemon.hpp"

namespace cerberus::cli {

namespace {

struct RunArgs {
    std::string db;
    std::string bus;
    std::string keep;
    std::string metrics;
    std::vector<std::string> rules;
    std::string emit_socket;
    std::string emit_group;
};

constexpr CommandHelp RUN_HELP{
    "run",
    "Follow every unit of systemd (and what cerberus emit reports), record each transition "
    "in the history database, evaluate the rules and deliver their alerts"};

int runDaemon(const RunArgs& args) {
    daemon::Options options;
    options.db_path = args.db;
    options.rules_paths = rulesPaths(args.rules);
    options.emit_socket = args.emit_socket;
    options.emit_group = args.emit_group;
    options.bus = args.bus.empty() ? (geteuid() == 0 ? "system" : "user") : args.bus;
    if (!args.keep.empty()) options.keep_usec = durationOption("--keep", args.keep);
    if (!args.metrics.empty()) {
        options.metrics = daemon::parseMetricsAddress(args.metrics);
        if (!options.metrics)
            throw core::Error(core::ExitCode::Usage,
                              "--metrics '" + args.metrics +
                                  "' is not HOST:PORT; use e.g. 127.0.0.1:9469 or "
                                  "[::1]:9469, with a port from 1 to 65535");
    }
    return daemon::run(options);
}

}  // namespace

void addRunCommand(CLI::App& app, Action& action) {
    const auto [cmd, args] = addDbCommand<RunArgs>(app, RUN_HELP);
    cmd->add_option("--bus", args->bus,
                    "system, user, or a D-Bus address such as unix:path=/run/user/1000/bus "
                    "(default: system for root, else user)");
    addRulesOption(cmd, args->rules);
    cmd->add_option(
        "--keep", args->keep,
        "Delete transitions older than this duration (e.g. 30d, 2w, 12h); default: keep all");
    cmd->add_option("--metrics", args->metrics,
                    "Serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9469 "
                    "or [::1]:9469 (0.0.0.0:9469 for every interface); default: off")
        ->type_name("HOST:PORT");
    cmd->add_option("--emit-socket", args->emit_socket,
                    "Listen for `cerberus emit` here, or 'none' (default: /run/cerberus/emit.sock "
                    "for root, else $XDG_RUNTIME_DIR/cerberus/emit.sock)")
        ->type_name("PATH");
    cmd->add_option("--emit-group", args->emit_group,
                    "A group whose members may emit events besides root (the socket becomes "
                    "0660 with that group; without it 0600)")
        ->type_name("NAME");
    setAction(cmd, action, args, runDaemon);
}

}  // namespace cerberus::cli
