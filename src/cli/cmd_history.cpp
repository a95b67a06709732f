#include "cli/commands.hpp"

namespace cerberus::cli {
void addHistoryCommand(CLI::App& app, Action& action) {
    auto* cmd = app.add_subcommand("history", "Show stored transitions");
    cmd->callback([&action] { action = [] { return 0; }; });
}
}  // namespace cerberus::cli
