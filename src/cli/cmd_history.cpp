#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/history_timeline.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "core/transition.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

constexpr int LIMIT_MAX = 1000000;

struct HistoryOptions {
    std::string db;
    std::optional<std::string> unit;
    std::optional<std::string> event;
    std::optional<std::string> since;
    std::optional<std::string> until;
    int limit = 100;
    bool json = false;
    bool timeline = false;
};

std::optional<core::Usec> timeOption(const char* flag, const std::optional<std::string>& text,
                                     core::Usec now_usec) {
    if (!text) return std::nullopt;
    if (auto usec = core::parseTimeArg(*text, now_usec)) return usec;
    throw core::Error(core::ExitCode::Usage,
                      fmt::format("{} '{}' is not a duration (2h) or ISO 8601 time "
                                  "(2026-11-24T10:00:00Z)",
                                  flag, *text));
}

std::string orDash(const std::string& text) { return text.empty() ? "-" : text; }

std::string stateCell(const core::Transition& t) {
    if (t.active_state.empty() && t.sub_state.empty()) return "-";
    if (t.sub_state.empty()) return t.active_state;
    return t.active_state + "/" + t.sub_state;
}

std::string exitCell(const core::Transition& t) {
    if (t.exit_code.empty()) return t.exit_status ? fmt::format("{}", *t.exit_status) : "-";
    if (!t.exit_status) return t.exit_code;
    return fmt::format("{} {}", t.exit_code, *t.exit_status);
}

void printTable(const std::vector<store::StoredTransition>& rows) {
    constexpr std::size_t COLUMNS = 8;
    using Row = std::array<std::string, COLUMNS>;
    std::vector<Row> cells;
    cells.reserve(rows.size() + 1);
    cells.push_back({"TIME", "UNIT", "EVENT", "STATE", "RESULT", "EXIT", "RESTARTS", "SOURCE"});
    for (const auto& row : rows) {
        const auto& t = row.transition;
        cells.push_back({core::formatIsoTime(t.ts_usec), t.unit,
                         std::string(core::toString(t.event)), stateCell(t), orDash(t.result),
                         exitCell(t), t.n_restarts ? fmt::format("{}", *t.n_restarts) : "-",
                         std::string(core::toString(t.source))});
    }
    std::array<std::size_t, COLUMNS> width{};
    for (const auto& row : cells)
        for (std::size_t i = 0; i < COLUMNS; ++i) width[i] = std::max(width[i], row[i].size());
    std::string out;
    for (const auto& row : cells) {
        for (std::size_t i = 0; i + 1 < COLUMNS; ++i)
            out += fmt::format("{:<{}}  ", row[i], width[i]);
        out += row[COLUMNS - 1];
        out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

nlohmann::ordered_json optionalText(const std::string& text) {
    if (text.empty()) return nullptr;
    return text;
}

template <typename T>
nlohmann::ordered_json optionalNumber(const std::optional<T>& value) {
    if (!value) return nullptr;
    return *value;
}

void printJson(const std::vector<store::StoredTransition>& rows) {
    auto array = nlohmann::ordered_json::array();
    for (const auto& row : rows) {
        const auto& t = row.transition;
        nlohmann::ordered_json item;
        item["id"] = row.id;
        item["time"] = core::formatIsoTime(t.ts_usec);
        item["ts_usec"] = t.ts_usec;
        item["unit"] = t.unit;
        item["event"] = core::toString(t.event);
        item["active_state"] = optionalText(t.active_state);
        item["sub_state"] = optionalText(t.sub_state);
        item["result"] = optionalText(t.result);
        item["exit_code"] = optionalText(t.exit_code);
        item["exit_status"] = optionalNumber(t.exit_status);
        item["n_restarts"] = optionalNumber(t.n_restarts);
        item["invocation_id"] = optionalText(t.invocation_id);
        item["main_pid"] = optionalNumber(t.main_pid);
        item["source"] = core::toString(t.source);
        array.push_back(std::move(item));
    }
    // Unit names from other inits are not guaranteed UTF-8; replace rather than fail.
    const std::string out =
        array.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

int runHistory(const HistoryOptions& options) {
    const core::Usec now_usec = core::SystemClock{}.realtime();
    store::HistoryQuery query;
    query.unit_glob = options.unit;
    if (options.event) query.event = core::parseEvent(*options.event);  // validated by CLI11
    query.since_usec = timeOption("--since", options.since, now_usec);
    query.until_usec = timeOption("--until", options.until, now_usec);
    query.limit = options.limit;
    if (query.since_usec && query.until_usec && *query.since_usec > *query.until_usec)
        throw core::Error(core::ExitCode::Usage,
                          fmt::format("--since '{}' is later than --until '{}'; swap them",
                                      *options.since, *options.until));

    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    if (options.timeline) query.limit = TIMELINE_ROWS_MAX;
    const auto rows = store::queryHistory(db, query);
    if (options.timeline)
        return printHistoryTimeline(rows, query.since_usec, query.until_usec, now_usec);
    if (options.json) {
        printJson(rows);
    } else if (rows.empty()) {
        std::fputs("no transitions match\n", stderr);
    } else {
        printTable(rows);
    }
    finishOutput("the history");
    return 0;
}

}  // namespace

void addHistoryCommand(CLI::App& app, Action& action) {
    auto options = std::make_shared<HistoryOptions>();
    auto* cmd = app.add_subcommand("history", "Show stored transitions, oldest first");
    addDbOption(cmd, options->db);
    cmd->add_option("--unit", options->unit, "Only units matching this glob (e.g. 'web-*.service')")
        ->type_name("GLOB");
    cmd->add_option("--event", options->event, "Only this event")
        ->type_name("E")
        ->check(CLI::IsMember({"start", "stop", "crash", "restart", "fail", "give_up"}));
    cmd->add_option("--since", options->since, "From this time: a duration ago (2h) or ISO 8601")
        ->type_name("T");
    cmd->add_option("--until", options->until, "Before this time: a duration ago or ISO 8601")
        ->type_name("T");
    cmd->add_option("--limit", options->limit, "Show the newest N matching transitions")
        ->type_name("N")
        ->check(CLI::Range(1, LIMIT_MAX))
        ->capture_default_str();
    cmd->add_flag("--json", options->json, "Print one JSON array instead of a table");
    cmd->add_flag("--timeline", options->timeline,
                  "Draw one line per unit over the span (crashes, restarts, up), at the "
                  "terminal's width, instead of rows (--limit does not apply)")
        ->excludes("--json");
    cmd->callback([&action, options] { action = [options] { return runHistory(*options); }; });
}

}  // namespace cerberus::cli
