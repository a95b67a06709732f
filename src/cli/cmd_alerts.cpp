#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

// More than anyone reads in a terminal; the note on stderr says when rows were left out.
constexpr int ALERTS_MAX = 100000;

struct AlertsOptions {
    std::string db;
    std::string state = "firing";
    bool json = false;
    bool utc = false;
};

constexpr CommandHelp ALERTS_HELP{"alerts", "Show recorded alerts, newest first"};

void printTable(const std::vector<store::StoredAlert>& alerts, bool utc) {
    Table cells;
    cells.reserve(alerts.size() + 1);
    cells.push_back(
        {"RULE", "UNIT", "STATE", "SEVERITY", "COUNT", "STARTED", "RESOLVED", "SILENCED"});
    for (const auto& a : alerts)
        cells.push_back({a.rule, a.unit, a.state, a.severity, fmt::format("{}", a.count),
                         core::formatTime(a.started_usec, utc),
                         a.resolved_usec ? core::formatTime(*a.resolved_usec, utc) : "-",
                         a.silenced ? "yes" : "no"});
    writeOut(formatTable(cells));
}

nlohmann::ordered_json optionalTime(const std::optional<core::Usec>& usec) {
    if (!usec) return nullptr;
    return core::formatIsoTime(*usec);
}

nlohmann::ordered_json optionalUsec(const std::optional<core::Usec>& usec) {
    if (!usec) return nullptr;
    return *usec;
}

void printJson(const std::vector<store::StoredAlert>& alerts) {
    auto array = nlohmann::ordered_json::array();
    for (const auto& a : alerts) {
        nlohmann::ordered_json item;
        item["id"] = a.id;
        item["rule"] = a.rule;
        item["unit"] = a.unit;
        item["host"] = a.host;
        item["dedup_key"] = a.dedup_key;
        item["state"] = a.state;
        item["severity"] = a.severity;
        item["count"] = a.count;
        item["started"] = core::formatIsoTime(a.started_usec);
        item["started_usec"] = a.started_usec;
        item["resolved"] = optionalTime(a.resolved_usec);
        item["resolved_usec"] = optionalUsec(a.resolved_usec);
        item["last_notified"] = optionalTime(a.last_notified_usec);
        item["last_notified_usec"] = optionalUsec(a.last_notified_usec);
        item["silenced"] = a.silenced;
        array.push_back(std::move(item));
    }
    writeOut(jsonText(array) + "\n");
}

int runAlerts(const AlertsOptions& options) {
    const std::string state = options.state == "all" ? "" : options.state;  // "": any state
    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    const auto alerts = store::queryAlerts(db, state, ALERTS_MAX);
    if (alerts.size() == static_cast<std::size_t>(ALERTS_MAX))
        std::fprintf(stderr, "cerberus: showing the newest %d alerts only\n", ALERTS_MAX);
    if (options.json)
        printJson(alerts);
    else if (alerts.empty())
        std::fprintf(stderr, "no %salerts\n", state.empty() ? "" : (state + " ").c_str());
    else
        printTable(alerts, options.utc);
    finishOutput("the alerts");
    return 0;
}

}  // namespace

void addAlertsCommand(CLI::App& app, Action& action) {
    const auto [cmd, options] = addDbCommand<AlertsOptions>(app, ALERTS_HELP);
    cmd->add_option("--state", options->state, "Which alerts: firing, resolved or all")
        ->type_name("STATE")
        ->check(CLI::IsMember({"firing", "resolved", "all"}))
        ->capture_default_str();
    cmd->add_flag("--json", options->json, "Print one JSON array instead of a table");
    addUtcFlag(cmd, options->utc);
    setAction(cmd, action, options, runAlerts);
}

}  // namespace cerberus::cli
