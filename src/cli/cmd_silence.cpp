#include <fmt/core.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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
    std::optional<std::string> duration;
    std::optional<std::string> until;
    std::string comment;
    bool all = false;
    bool json = false;
    bool utc = false;
    std::int64_t id = 0;
};

constexpr CommandHelp SILENCE_HELP{
    "silence", "Hold back alerts of matching units for a while (they are still recorded)"};

int add(const SilenceArgs& args) {
    const core::Usec now = core::SystemClock{}.realtime();
    core::Usec ends_usec = 0;
    if (args.duration) {
        ends_usec = now + durationOption("--for", *args.duration);
    } else {
        ends_usec = *timeOption("--until", args.until, now);
        if (ends_usec <= now)
            throw core::Error(core::ExitCode::Usage,
                              fmt::format("--until '{}' is not in the future; give a later time "
                                          "or use --for",
                                          *args.until));
    }
    auto db = store::Database::open(args.db, store::OpenMode::ReadWrite);
    store::Silence silence;
    silence.unit_glob = args.unit;
    silence.rule = args.rule;
    silence.starts_usec = now;
    silence.ends_usec = ends_usec;
    silence.comment = args.comment;
    const auto id = store::addSilence(db, silence);
    fmt::print("silence {} added: unit '{}'{} until {} (for {})\n", id, args.unit,
               args.rule.empty() ? std::string() : " rule '" + args.rule + "'",
               core::formatTime(silence.ends_usec, args.utc),
               core::formatDuration(silence.ends_usec - now, core::USEC_PER_SEC));
    return 0;
}

int list(const SilenceArgs& args) {
    auto db = store::Database::open(args.db, store::OpenMode::ReadOnly);
    const auto silences =
        store::listSilences(db, !args.all, core::SystemClock{}.realtime()).orThrow();
    if (args.json) {
        auto out = nlohmann::ordered_json::array();
        for (const auto& s : silences) {
            out.push_back({{"id", s.id},
                           {"unit", s.unit_glob},
                           {"rule", s.rule.empty() ? nlohmann::ordered_json()
                                                   : nlohmann::ordered_json(s.rule)},
                           {"starts", core::formatIsoTime(s.starts_usec)},
                           {"ends", core::formatIsoTime(s.ends_usec)},
                           {"starts_usec", s.starts_usec},
                           {"ends_usec", s.ends_usec},
                           {"comment", s.comment}});
        }
        writeOut(jsonText(out) + "\n");
        finishOutput("the silences");
        return 0;
    }
    if (silences.empty()) {
        fmt::print(stderr, "no {}silences\n", args.all ? "" : "active ");
        return 0;
    }
    Table cells{{"ID", "UNIT", "RULE", "STARTS", "ENDS", "COMMENT"}};
    for (const auto& s : silences)
        cells.push_back({std::to_string(s.id), s.unit_glob, s.rule.empty() ? "*" : s.rule,
                         core::formatTime(s.starts_usec, args.utc),
                         core::formatTime(s.ends_usec, args.utc), s.comment});
    writeOut(formatTable(cells));
    finishOutput("the silences");
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
    const auto silence = addDbCommand<SilenceArgs>(app, SILENCE_HELP);
    // Not a structured binding: the callback of `add` captures them, which clang rejects.
    CLI::App* cmd = silence.cmd;
    const auto args = silence.options;
    cmd->require_subcommand(1);
    addUtcFlag(cmd, args->utc);

    auto* add_cmd = cmd->add_subcommand("add", "Silence alerts of units matching a glob");
    add_cmd->add_option("-u,--unit", args->unit, "Unit glob, e.g. 'web-*.service'")
        ->type_name("GLOB")
        ->required();
    add_cmd->add_option("--rule", args->rule, "Only this rule (default: every rule)");
    auto* for_opt =
        add_cmd->add_option("--for", args->duration, "How long: 30min, 2h, 1h 30min, 1d, ...")
            ->type_name("DUR");
    auto* until_opt = add_cmd
                          ->add_option("-U,--until", args->until,
                                       "Or until this time: 'tomorrow', '+2h', "
                                       "'2026-12-01 18:00' (local time), ...")
                          ->type_name("T");
    for_opt->excludes(until_opt);
    add_cmd->add_option("--comment", args->comment, "Why, for the next person");
    add_cmd->callback([&action, args] {
        if (!args->duration && !args->until)
            throw CLI::ValidationError("silence add", "give --for DUR or --until T");
        action = [args] { return add(*args); };
    });

    auto* list_cmd = cmd->add_subcommand("list", "List active silences");
    list_cmd->add_flag("--all", args->all, "Also list ended silences");
    list_cmd->add_flag("--json", args->json, "One JSON array instead of a table");
    setAction(list_cmd, action, args, list);

    auto* expire_cmd = cmd->add_subcommand("expire", "End a silence now");
    expire_cmd->add_option("ID", args->id, "The silence's id (see 'cerberus silence list')")
        ->required();
    setAction(expire_cmd, action, args, expire);

    // `silence add --db X`: an option of `silence` given after its action.
    for (auto* sub : {add_cmd, list_cmd, expire_cmd}) sub->fallthrough();
}

}  // namespace cerberus::cli
