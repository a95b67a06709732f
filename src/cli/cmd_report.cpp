#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cli/commands.hpp"
#include "cli/history_timeline.hpp"
#include "cli/report.hpp"
#include "cli/timeline.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "core/unit_name.hpp"
#include "rules/evaluator.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

using core::Usec;

// Every alert and silence is read, newest first; a history holding more is cut here.
constexpr int ALERTS_MAX = 1000000;
// Without --since: this long before the first transition when there is none.
constexpr Usec EMPTY_SPAN_USEC = core::USEC_PER_HOUR;
// Without --since/--until: the span starts before the first and ends after the last thing
// recorded by 1/40 of what lies between.
constexpr Usec END_ROOM_DIVISOR = 40;

struct ReportOptions {
    std::string db;
    std::string output;
    std::vector<std::string> units;
    std::vector<std::string> rules;
    std::optional<std::string> since;
    std::optional<std::string> until;
};

constexpr CommandHelp REPORT_HELP{
    .name = "report",
    .description = "Write a self-contained HTML report: a timeline per unit, alerts, rankings",
    .footer =
        "One HTML file with inline SVG and CSS: no script, nothing fetched, opens from a "
        "file:// URL and prints. Per unit a lane: runs as bars, crashes coloured by result, "
        "restarts, operator stops and starts, give-ups, alert bands from fire to resolve and "
        "silences; hover a mark for its time, exit status and InvocationID. Tables rank units "
        "by crashes and list every alert with its time to fire and to resolve.",
};

bool selected(const std::vector<std::string>& patterns, const std::string& unit) {
    if (patterns.empty()) return true;
    return std::any_of(patterns.begin(), patterns.end(),
                       [&unit](const std::string& p) { return core::unitMatches(p, unit); });
}

std::string joined(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : " ") + p;
    return out;
}

// The rules run over the same transitions with a virtual clock, as `cerberus replay` does:
// deadlines due by each transition first, then the transition; at the end, every timer due
// by the report's end.
class ReplayOverlay {
public:
    explicit ReplayOverlay(rules::RuleSet set) : evaluator_(std::move(set)) {}

    void observe(const core::Transition& t) {
        changes_.clear();
        evaluator_.tick(t.ts_usec, changes_);
        evaluator_.observe(t, t.ts_usec, changes_);
        record();
    }

    std::vector<AlertSpan> finish(Usec until_usec) {
        changes_.clear();
        evaluator_.tick(until_usec, changes_);
        record();
        return std::move(spans_);
    }

private:
    void record() {
        for (const auto& c : changes_) {
            const std::string key = c.rule + '\n' + c.unit;
            switch (c.kind) {
            case rules::ChangeKind::Fire: {
                AlertSpan span;
                span.rule = c.rule;
                span.unit = c.unit;
                span.severity = std::string(rules::toString(c.severity));
                span.fired_usec = c.at_usec;
                span.count = static_cast<std::int64_t>(c.count);
                open_[key] = spans_.size();
                spans_.push_back(std::move(span));
                break;
            }
            case rules::ChangeKind::Repeat:
            case rules::ChangeKind::Count:
                if (auto it = open_.find(key); it != open_.end())
                    spans_[it->second].count = static_cast<std::int64_t>(c.count);
                break;
            case rules::ChangeKind::Resolve:
                if (auto it = open_.find(key); it != open_.end()) {
                    spans_[it->second].resolved_usec = c.at_usec;
                    open_.erase(it);
                }
                break;
            }
        }
    }

    rules::Evaluator evaluator_;
    std::vector<rules::AlertChange> changes_;
    std::vector<AlertSpan> spans_;
    std::unordered_map<std::string, std::size_t> open_;
};

std::string hostName() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "";
    return name;
}

void writeReport(const std::string& html, const std::string& path) {
    if (path.empty() || path == "-") {
        std::fwrite(html.data(), 1, html.size(), stdout);
        finishOutput("the report");
        return;
    }
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "w"), &std::fclose);
    if (!file)
        throw core::Error(core::ExitCode::Failure,
                          fmt::format("cannot write the report to '{}': {}; choose another -o FILE",
                                      path, std::strerror(errno)));
    const bool written = std::fwrite(html.data(), 1, html.size(), file.get()) == html.size();
    if (!written || std::fclose(file.release()) != 0)
        throw core::Error(
            core::ExitCode::Failure,
            fmt::format("cannot write the report to '{}': {}", path, std::strerror(errno)));
}

int runReport(const ReportOptions& options) {
    const Usec now_usec = core::SystemClock{}.realtime();
    const auto [since_usec, until_usec] = timeRange(options.since, options.until, now_usec);
    if (since_usec && until_usec && *since_usec == *until_usec)
        throw core::Error(core::ExitCode::Usage,
                          fmt::format("--since '{}' and --until '{}' are the same time; give a "
                                      "span the report can draw",
                                      *options.since, *options.until));
    std::optional<ReplayOverlay> replay;
    if (!options.rules.empty()) replay.emplace(loadRulesOrReport(options.rules));

    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    ReportData data;
    store::forEachTransition(db, since_usec, until_usec, [&](const core::Transition& t) {
        if (!selected(options.units, t.unit)) return true;
        data.add(t);
        if (replay) replay->observe(t);
        return true;
    });

    const auto alerts = store::queryAlerts(db, "", ALERTS_MAX);
    // Without --until the span ends with the last thing recorded (a transition, a fire or a
    // resolve): after it nothing changed. Without --since it begins with the first.
    Usec last_usec = data.rows.empty() ? 0 : data.rows.back().ts_usec;
    Usec first_usec = data.rows.empty() ? now_usec : data.rows.front().ts_usec;
    for (const auto& a : alerts) {
        if (!selected(options.units, a.unit)) continue;
        if ((since_usec && a.started_usec < *since_usec) ||
            (until_usec && a.started_usec >= *until_usec))
            continue;
        last_usec = std::max({last_usec, a.started_usec, a.resolved_usec.value_or(0)});
        first_usec = std::min(first_usec, a.started_usec);
    }
    ReportMeta meta;
    meta.to_usec = until_usec ? *until_usec : last_usec > 0 ? last_usec + 1 : now_usec;
    // A little room after the last thing recorded, so a band that resolved there ends visibly
    // before the edge where still-firing ones run out.
    const Usec room = last_usec > first_usec ? (last_usec - first_usec) / END_ROOM_DIVISOR : 0;
    if (!until_usec && last_usec > 0) meta.to_usec += room;
    meta.from_usec = since_usec                  ? *since_usec
                     : first_usec < meta.to_usec ? first_usec - room
                                                 : meta.to_usec - EMPTY_SPAN_USEC;
    meta.generated_usec = now_usec;
    meta.host = hostName();
    meta.db_path = options.db;
    meta.filter = joined(options.units);
    meta.replay_rules = joined(options.rules);

    for (const auto& a : alerts) {
        if (!selected(options.units, a.unit)) continue;
        if (a.started_usec >= meta.to_usec) continue;
        if (a.resolved_usec && *a.resolved_usec < meta.from_usec) continue;
        data.unitIndex(a.unit);
        data.alerts.push_back(AlertSpan{a.rule, a.unit, a.severity, a.started_usec, a.resolved_usec,
                                        a.count, a.silenced});
    }
    if (replay) {
        for (auto& span : replay->finish(meta.to_usec)) {
            data.unitIndex(span.unit);
            data.replay_alerts.push_back(std::move(span));
        }
    }
    for (const auto& s : store::listSilences(db, false, now_usec).orThrow()) {
        if (s.ends_usec <= meta.from_usec || s.starts_usec >= meta.to_usec) continue;
        data.silences.push_back(
            SilenceSpan{s.unit_glob, s.rule, s.starts_usec, s.ends_usec, s.comment});
    }
    writeReport(renderReport(data, meta), options.output);
    return 0;
}

}  // namespace

void addReportCommand(CLI::App& app, Action& action) {
    const auto [cmd, options] = addDbCommand<ReportOptions>(app, REPORT_HELP);
    cmd->add_option("-o,--output", options->output, "Write the report to FILE (default: stdout)")
        ->type_name("FILE");
    addUnitOption(cmd, options->units,
                  "Only units matching this glob; a bare name means NAME.service; repeatable");
    addTimeRangeOptions(cmd, options->since, options->until,
                        "From this time, as journalctl reads it (default: the first thing "
                        "recorded)",
                        "Before this time (default: just after the last thing recorded)");
    cmd->add_option("--rules", options->rules,
                    "Also draw the alerts these rules would have raised (a replay); repeatable")
        ->type_name("PATH");
    setAction(cmd, action, options, runReport);
}

int printHistoryTimeline(const std::vector<store::StoredTransition>& rows,
                         std::optional<Usec> since_usec, std::optional<Usec> until_usec,
                         Usec now_usec, bool utc) {
    if (rows.empty()) {
        std::fputs("no transitions match\n", stderr);
        return 0;
    }
    std::vector<TimelineLane> lanes;
    std::unordered_map<std::string, std::size_t> lane_of;
    for (const auto& row : rows) {
        const auto& t = row.transition;
        auto [it, added] = lane_of.emplace(t.unit, lanes.size());
        if (added) lanes.push_back({t.unit, {}});
        lanes[it->second].events.push_back({t.ts_usec, t.event});
    }
    std::sort(lanes.begin(), lanes.end(),
              [](const TimelineLane& a, const TimelineLane& b) { return a.unit < b.unit; });
    // Without --until the span ends with the last transition: after it nothing changed.
    const Usec to_usec = until_usec.value_or(rows.back().transition.ts_usec + 1);
    const Usec from_usec =
        since_usec.value_or(std::min(rows.front().transition.ts_usec, to_usec - 1));
    TimelineStyle style;
    style.width = terminalWidth();
    style.utc = utc;
    const char* term = std::getenv("TERM");
    style.color = ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr &&
                  !(term && std::string_view(term) == "dumb");
    const std::string out = renderTimeline(lanes, from_usec, to_usec, now_usec, style);
    std::fwrite(out.data(), 1, out.size(), stdout);
    finishOutput("the timeline");
    return 0;
}

}  // namespace cerberus::cli
