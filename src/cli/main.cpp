#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace {

int run(int argc, char** argv) {
    using cerberus::core::ExitCode;
    CLI::App app{"cerberus: crash-loop alerting for Linux services", "cerberus"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("cerberus ") + CERBERUS_VERSION);
    cerberus::cli::Action action;
    cerberus::cli::addRunCommand(app, action);
    cerberus::cli::addCheckCommand(app, action);
    cerberus::cli::addHistoryCommand(app, action);
    cerberus::cli::addAlertsCommand(app, action);
    cerberus::cli::addReplayCommand(app, action);
    cerberus::cli::addReportCommand(app, action);
    cerberus::cli::addSilenceCommand(app, action);
    cerberus::cli::addTestReceiverCommand(app, action);
    cerberus::cli::addEmitCommand(app, action);
    cerberus::cli::addSupervisorListenerCommand(app, action);
    // After the commands: they would inherit it.
    app.footer(
        "--db, --rules, --utc and --json may also stand before the command, e.g. "
        "'cerberus --db FILE silence add ...'.");

    auto args = cerberus::cli::hoistGlobalOptions(app, std::vector<std::string>(argv, argv + argc));
    if (args.size() > 1 && args[1][0] != '-') {
        bool known = false;
        for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; }))
            known = known || sub->get_name() == args[1];
        if (!known) {
            std::fprintf(stderr, "cerberus: unknown command '%s'; see 'cerberus --help'.\n",
                         args[1].c_str());
            return static_cast<int>(ExitCode::Usage);
        }
    }
    std::vector<char*> pointers;
    pointers.reserve(args.size());
    for (auto& arg : args) pointers.push_back(arg.data());
    try {
        app.parse(static_cast<int>(pointers.size()), pointers.data());
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "cerberus: %s (see 'cerberus --help').\n", e.what());
        return static_cast<int>(ExitCode::Usage);
    }
    try {
        return action();
    } catch (const cerberus::core::Error& e) {
        // `cerberus run` under systemd: an error, for `journalctl -p err`.
        cerberus::core::log(cerberus::core::Priority::Err, e.what());
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        cerberus::core::log(cerberus::core::Priority::Err,
                            std::string("unexpected error: ") + e.what());
        return static_cast<int>(ExitCode::Failure);
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (...) {
        std::fputs("cerberus: unexpected error\n", stderr);
        return static_cast<int>(cerberus::core::ExitCode::Failure);
    }
}
