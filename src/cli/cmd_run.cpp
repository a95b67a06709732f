#include "cli/commands.hpp"

namespace cerberus::cli {
void addRunCommand(CLI::App& app, Action& action) {
    auto* cmd = app.add_subcommand("run", "Watch every unit and record its transitions");
    cmd->callback([&action] { action = [] { return 0; }; });
}
}  // namespace cerberus::cli
