#include <fmt/core.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

struct SilenceArgs {
    std::string db;
    std::string unit;
    std::string rule;
    std::string duration;
    std::string comment;
    bool all = false;
    bool json = false;
    std::int64_t id = 0;
};

int add(const SilenceArgs& args) {
    const auto duration = core::parseDuration(args.duration);
    if (!duration || *duration <= 0)
        throw core::Error(core::ExitCode::Usage, "--for '" + args.duration +
                                                     "' is not a duration; use e.g. 30m, 2h or 1d");
    const core::SystemClock clock;
    const core::Usec now = clock.realtime();
    auto db = store::Database::open(args.db, store::OpenMode::ReadWrite);
    store::Silence silence;
    silence.unit_glob = args.unit;
    silence.rule = args.rule;
    silence.starts_usec = now;
    silence.ends_usec = now + *duration;
    silence.comment = args.comment;
    const auto id = store::addSilence(db, silence);
    fmt::print("silence {} added: unit '{}'{} until {}\n", id, args.unit,
               args.rule.empty() ? std::string() : " rule '" + args.rule + "'",
               core::formatIsoTime(silence.ends_usec));
    return 0;
}

int list(const SilenceArgs& args) {
    const core::SystemClock clock;
    auto db = store::Database::open(args.db, store::OpenMode::ReadOnly);
    const auto silences = store::listSilences(db, !args.all, clock.realtime());
    if (args.json) {
        auto out = nlohmann::json::array();
        for (const auto& s : silences) {
            out.push_back({{"id", s.id},
                           {"unit", s.unit_glob},
                           {"rule", s.rule.empty() ? nlohmann::json() : nlohmann::json(s.rule)},
                           {"starts", core::formatIsoTime(s.starts_usec)},
                           {"ends", core::formatIsoTime(s.ends_usec)},
                           {"starts_usec", s.starts_usec},
                           {"ends_usec", s.ends_usec},
                           {"comment", s.comment}});
        }
        fmt::print("{}\n", out.dump(2));
        return 0;
    }
    if (silences.empty()) {
        fmt::print(stderr, "no {}silences\n", args.all ? "" : "active ");
        return 0;
    }
    fmt::print("{:<6} {:<28} {:<16} {:<25} {:<25} {}\n", "ID", "UNIT", "RULE", "STARTS", "ENDS",
               "COMMENT");
    for (const auto& s : silences)
        fmt::print("{:<6} {:<28} {:<16} {:<25} {:<25} {}\n", s.id, s.unit_glob,
                   s.rule.empty() ? "*" : s.rule, core::formatIsoTime(s.starts_usec),
                   core::formatIsoTime(s.ends_usec), s.comment);
    return 0;
}

int expire(const SilenceArgs& args) {
    const core::SystemClock clock;
    auto db = store::Database::open(args.db, store::OpenMode::ReadWrite);
    if (!store::expireSilence(db, args.id, clock.realtime()))
        throw core::Error(
            core::ExitCode::Failure,
            fmt::format("no active silence with id {}; see 'cerberus silence list'", args.id));
    fmt::print("silence {} expired\n", args.id);
    return 0;
}

}  // namespace

void addSilenceCommand(CLI::App& app, Action& action) {
    auto args = std::make_shared<SilenceArgs>();
    auto* cmd = app.add_subcommand(
        "silence", "Hold back alerts of matching units for a while (they are still recorded)");
    cmd->require_subcommand(1);
    addDbOption(cmd, args->db);

    auto* add_cmd = cmd->add_subcommand("add", "Silence alerts of units matching a glob");
    add_cmd->add_option("--unit", args->unit, "Unit glob, e.g. 'web-*.service'")->required();
    add_cmd->add_option("--rule", args->rule, "Only this rule (default: every rule)");
    add_cmd->add_option("--for", args->duration, "How long, e.g. 2h")->required();
    add_cmd->add_option("--comment", args->comment, "Why, for the next person");
    add_cmd->callback([&action, args] { action = [args] { return add(*args); }; });

    auto* list_cmd = cmd->add_subcommand("list", "List active silences");
    list_cmd->add_flag("--all", args->all, "Also list ended silences");
    list_cmd->add_flag("--json", args->json, "One JSON array instead of a table");
    list_cmd->callback([&action, args] { action = [args] { return list(*args); }; });

    auto* expire_cmd = cmd->add_subcommand("expire", "End a silence now");
    expire_cmd->add_option("ID", args->id, "The silence's id (see 'cerberus silence list')")
        ->required();
    expire_cmd->callback([&action, args] { action = [args] { return expire(*args); }; });
}

}  // namespace cerberus::cli
