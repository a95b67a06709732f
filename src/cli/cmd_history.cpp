#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <ctime>
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
#include "core/unit_name.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

constexpr int LIMIT_MAX = 1000000;
constexpr int LIMIT_DEFAULT = 100;
// Like journalctl -f: what --follow shows of the past unless -n says otherwise.
constexpr int FOLLOW_LIMIT = 10;
// How often --follow looks for new rows: one PRAGMA when nothing changed.
constexpr long FOLLOW_POLL_MSEC = 200;

struct HistoryOptions {
    std::string db;
    std::vector<std::string> units;
    std::vector<std::string> events;
    std::optional<std::string> since;
    std::optional<std::string> until;
    std::optional<int> limit;  // -n: LIMIT_DEFAULT, or FOLLOW_LIMIT with --follow
    bool follow = false;
    bool json = false;
    bool utc = false;
    bool timeline = false;
};

constexpr CommandHelp HISTORY_HELP{"history", "Show stored transitions, oldest first"};

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

Table tableOf(const std::vector<store::StoredTransition>& rows, bool utc, bool header) {
    Table cells;
    cells.reserve(rows.size() + 1);
    if (header)
        cells.push_back({"TIME", "UNIT", "EVENT", "STATE", "RESULT", "EXIT", "RESTARTS", "SOURCE"});
    for (const auto& row : rows) {
        const auto& t = row.transition;
        cells.push_back({core::formatTime(t.ts_usec, utc), t.unit,
                         std::string(core::toString(t.event)), stateCell(t), orDash(t.result),
                         exitCell(t), t.n_restarts ? fmt::format("{}", *t.n_restarts) : "-",
                         std::string(core::toString(t.source))});
    }
    return cells;
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

nlohmann::ordered_json jsonOf(const store::StoredTransition& row) {
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
    return item;
}

store::HistoryQuery queryOf(const HistoryOptions& options) {
    store::HistoryQuery query;
    for (const auto& unit : options.units)
        for (auto& glob : core::unitGlobs(unit)) query.unit_globs.push_back(std::move(glob));
    for (const auto& event : options.events)
        query.events.push_back(*core::parseEvent(event));  // validated by CLI11
    const auto range = timeRange(options.since, options.until, core::SystemClock{}.realtime());
    query.since_usec = range.since_usec;
    query.until_usec = range.until_usec;
    query.limit = options.limit.value_or(LIMIT_DEFAULT);
    return query;
}

// Blocks SIGINT and SIGTERM so that --follow takes them with sigtimedwait() and ends cleanly.
sigset_t blockStopSignals() {
    sigset_t set;
    // These fail only for a null set or an invalid signal number, neither possible here.
    (void)sigemptyset(&set);
    (void)sigaddset(&set, SIGINT);
    (void)sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        throw core::Error(core::ExitCode::Failure, "cannot block SIGINT and SIGTERM to follow");
    return set;
}

// True once SIGINT or SIGTERM arrived, else after `msec` of waiting.
bool stopRequested(const sigset_t& set, long msec) {
    const timespec wait{msec / 1000, (msec % 1000) * 1000000};
    return sigtimedwait(&set, nullptr, &wait) > 0;
}

// journalctl -f: the newest rows, then every new one as it is stored, until SIGINT or SIGTERM.
// A row is new when its id is above the newest seen; PRAGMA data_version says whether
// anything was committed at all, so an idle poll reads no table.
int followHistory(const HistoryOptions& options, store::HistoryQuery query) {
    const sigset_t stop = blockStopSignals();
    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    std::int64_t version = store::dataVersion(db);
    std::int64_t seen_id = store::lastTransitionId(db);
    query.limit = options.limit.value_or(FOLLOW_LIMIT);
    query.through_id = seen_id;
    const auto past = store::queryHistory(db, query);

    // The columns of the first rows, wide enough for what usually follows.
    auto first = tableOf(past, options.utc, true);
    auto width = columnWidths(first);
    static constexpr std::size_t MIN_WIDTH[] = {30, 24, 7, 18, 9, 13, 8};
    for (std::size_t i = 0; i < std::size(MIN_WIDTH); ++i)
        width[i] = std::max(width[i], MIN_WIDTH[i]);
    auto print = [&](const std::vector<store::StoredTransition>& rows, const Table& cells) {
        if (options.json) {
            std::string out;
            for (const auto& row : rows) out += jsonText(jsonOf(row), -1) + "\n";
            writeOut(out);
        } else {
            writeOut(formatTable(cells, width));
        }
        finishOutput("the history");
    };
    print(past, first);

    query.limit = LIMIT_MAX;
    while (!stopRequested(stop, FOLLOW_POLL_MSEC)) {
        const std::int64_t now_version = store::dataVersion(db);
        if (now_version == version) continue;
        version = now_version;
        const std::int64_t newest = store::lastTransitionId(db);
        if (newest <= seen_id) continue;
        query.after_id = seen_id;
        query.through_id = newest;
        const auto rows = store::queryHistory(db, query);
        seen_id = newest;
        if (!rows.empty()) print(rows, tableOf(rows, options.utc, false));
    }
    return 0;
}

int runHistory(const HistoryOptions& options) {
    auto query = queryOf(options);
    if (options.follow) return followHistory(options, std::move(query));
    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    if (options.timeline) query.limit = TIMELINE_ROWS_MAX;
    const auto rows = store::queryHistory(db, query);
    if (options.timeline)
        return printHistoryTimeline(rows, query.since_usec, query.until_usec,
                                    core::SystemClock{}.realtime(), options.utc);
    if (options.json) {
        auto array = nlohmann::ordered_json::array();
        for (const auto& row : rows) array.push_back(jsonOf(row));
        writeOut(jsonText(array) + "\n");
    } else if (rows.empty()) {
        std::fputs("no transitions match\n", stderr);
    } else {
        writeOut(formatTable(tableOf(rows, options.utc, true)));
    }
    finishOutput("the history");
    return 0;
}

}  // namespace

void addHistoryCommand(CLI::App& app, Action& action) {
    const auto [cmd, options] = addDbCommand<HistoryOptions>(app, HISTORY_HELP);
    addUnitOption(cmd, options->units,
                  "Only units matching this glob; repeatable. A name without a unit type "
                  "also matches NAME.service (as journalctl -u)");
    cmd->add_option("--event", options->events,
                    "Only these events (start, stop, crash, restart, fail, give_up): a comma "
                    "list, repeatable")
        ->type_name("E,...")
        ->delimiter(',')
        ->check(CLI::IsMember({"start", "stop", "crash", "restart", "fail", "give_up"}));
    addTimeRangeOptions(cmd, options->since, options->until,
                        "From this time: 'today', '-2h', '1 hour ago', '2026-12-01 14:00' (local "
                        "time), ISO 8601 with an offset, @EPOCH",
                        "Before this time, written as for --since");
    cmd->add_option(
           "-n,--limit", options->limit,
           fmt::format("Show the newest N matching transitions (with --follow: {})", FOLLOW_LIMIT))
        ->type_name("N")
        ->check(CLI::Range(0, LIMIT_MAX))
        ->default_str(std::to_string(LIMIT_DEFAULT));
    cmd->add_flag("-f,--follow", options->follow,
                  "Then print each new matching transition as it is stored, until Ctrl-C "
                  "(with --json: one object per line)");
    cmd->add_flag("--json", options->json, "Print one JSON array instead of a table");
    addUtcFlag(cmd, options->utc);
    cmd->add_flag("--timeline", options->timeline,
                  "Draw one line per unit over the span (crashes, restarts, up), at the "
                  "terminal's width, instead of rows (--limit does not apply)")
        ->excludes("--json")
        ->excludes("--follow");
    setAction(cmd, action, options, runHistory);
}

}  // namespace cerberus::cli
