#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "core/time.hpp"
#include "core/transition.hpp"
#include "rules/evaluator.hpp"
#include "rules/rules.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

using core::Usec;

// Event times kept per (rule, unit) for "time to fire"; beyond this the oldest are dropped,
// which can only shorten the figure (an event every 30 ms for the whole of a 5m window).
constexpr std::size_t TRACKED_EVENTS_MAX = 10000;

struct ReplayOptions {
    std::string db;
    std::vector<std::string> rules;
    std::optional<std::string> since;
    std::optional<std::string> until;
    bool json = false;
    bool utc = false;
};

constexpr CommandHelp REPLAY_HELP{
    .name = "replay",
    .description = "Backtest rules on a history database (read-only) with a virtual clock",
    .footer =
        "Prints every alert change the rules would have made and, per rule: alerts fired, "
        "distinct units, median time to fire, repeats, resolves, alerts firing at the end.\n"
        "Time to fire: from the earliest event of the rule's when.event type for that unit "
        "within the rule's 'within' before the fire (filters not applied, nothing from before "
        "the rule last fired or resolved for that unit), to the fire.",
};

// One alert change, kept small: a replay over months of history can make many.
struct Record {
    Usec at_usec = 0;
    Usec started_usec = 0;
    std::optional<Usec> time_to_fire_usec;  // Fire only
    std::size_t count = 0;
    std::uint32_t rule = 0;
    std::uint32_t unit = 0;
    rules::ChangeKind kind = rules::ChangeKind::Fire;
    rules::ResolveReason reason = rules::ResolveReason::None;
};

// The times of one unit's events of the type a rule counts, within the rule's `within`.
struct EventWindow {
    std::uint32_t rule = 0;
    core::Event event = core::Event::Crash;
    Usec within_usec = 0;
    std::deque<Usec> times;
};

struct RuleSummary {
    std::size_t fired = 0;
    std::size_t repeats = 0;
    std::size_t resolved = 0;
    std::vector<std::uint32_t> units;
    std::vector<Usec> times_to_fire;
};

class Replay {
public:
    explicit Replay(rules::RuleSet set) : evaluator_(std::move(set)) {
        const auto& list = evaluator_.ruleSet().rules;
        for (std::uint32_t r = 0; r < list.size(); ++r) rule_index_.emplace(list[r].name, r);
        summaries_.resize(list.size());
    }

    void observe(const core::Transition& t) {
        if (transitions_ == 0) first_usec_ = t.ts_usec;
        last_usec_ = t.ts_usec;
        ++transitions_;
        // Deadlines due first, so a resolve does not clear the window this event joins.
        changes_.clear();
        evaluator_.tick(t.ts_usec, changes_);
        record(changes_);
        const std::uint32_t u = unitIndex(t.unit);
        for (auto& w : windows_[u]) {
            if (w.event != t.event) continue;
            w.times.push_back(t.ts_usec);
            while (w.times.front() < t.ts_usec - w.within_usec ||
                   w.times.size() > TRACKED_EVENTS_MAX)
                w.times.pop_front();
        }
        changes_.clear();
        evaluator_.observe(t, t.ts_usec, changes_);
        record(changes_);
    }

    void finish(std::optional<Usec> until_usec) {
        if (!until_usec) return;
        changes_.clear();
        evaluator_.tick(*until_usec, changes_);
        record(changes_);
    }

    void printText(bool utc) const;
    void printJson() const;

private:
    std::uint32_t unitIndex(const std::string& name) {
        if (auto it = unit_index_.find(name); it != unit_index_.end()) return it->second;
        const auto u = static_cast<std::uint32_t>(unit_names_.size());
        unit_names_.push_back(name);
        unit_index_.emplace(name, u);
        auto& windows = windows_.emplace_back();
        const auto& list = evaluator_.ruleSet().rules;
        for (std::uint32_t r = 0; r < list.size(); ++r)
            if (list[r].matchesUnit(name))
                windows.push_back(EventWindow{r, list[r].when.event, list[r].when.within_usec, {}});
        return u;
    }

    EventWindow* window(std::uint32_t unit, std::uint32_t rule) {
        for (auto& w : windows_[unit])
            if (w.rule == rule) return &w;
        return nullptr;
    }

    void record(const std::vector<rules::AlertChange>& changes) {
        for (const auto& c : changes) {
            Record rec;
            rec.at_usec = c.at_usec;
            rec.started_usec = c.started_usec;
            rec.count = c.count;
            rec.rule = rule_index_.at(c.rule);
            rec.unit = unitIndex(c.unit);
            rec.kind = c.kind;
            rec.reason = c.reason;
            RuleSummary& summary = summaries_[rec.rule];
            EventWindow* w = window(rec.unit, rec.rule);
            switch (c.kind) {
            case rules::ChangeKind::Fire:
                rec.time_to_fire_usec = w && !w->times.empty() ? c.at_usec - w->times.front() : 0;
                summary.times_to_fire.push_back(*rec.time_to_fire_usec);
                summary.units.push_back(rec.unit);
                ++summary.fired;
                if (w) w->times.clear();  // as the evaluator empties its window on firing
                break;
            case rules::ChangeKind::Repeat: ++summary.repeats; break;
            case rules::ChangeKind::Count: break;
            case rules::ChangeKind::Resolve:
                ++summary.resolved;
                if (w) w->times.clear();
                break;
            }
            records_.push_back(rec);
        }
    }

    rules::Evaluator evaluator_;
    std::unordered_map<std::string, std::uint32_t> rule_index_;
    std::unordered_map<std::string, std::uint32_t> unit_index_;
    std::vector<std::string> unit_names_;
    std::vector<std::vector<EventWindow>> windows_;  // by unit
    std::vector<rules::AlertChange> changes_;        // reused: no allocation per transition
    std::vector<Record> records_;
    std::vector<RuleSummary> summaries_;  // by rule
    std::size_t transitions_ = 0;
    Usec first_usec_ = 0;
    Usec last_usec_ = 0;
};

std::optional<Usec> median(std::vector<Usec> values) {
    if (values.empty()) return std::nullopt;
    const std::size_t mid = values.size() / 2;
    std::nth_element(values.begin(), values.begin() + mid, values.end());
    if (values.size() % 2 == 1) return values[mid];
    const Usec upper = values[mid];
    const Usec lower = *std::max_element(values.begin(), values.begin() + mid);
    return lower + (upper - lower) / 2;
}

std::size_t distinct(std::vector<std::uint32_t> values) {
    std::sort(values.begin(), values.end());
    return static_cast<std::size_t>(std::unique(values.begin(), values.end()) - values.begin());
}

std::string kindWord(rules::ChangeKind kind) {
    switch (kind) {
    case rules::ChangeKind::Fire: return "FIRE";
    case rules::ChangeKind::Repeat: return "REPEAT";
    case rules::ChangeKind::Resolve: return "RESOLVE";
    case rules::ChangeKind::Count: return "COUNT";
    }
    return "?";
}

// Times to fire for people: to the millisecond, "1.512s" rather than "1.512469s".
std::string readable(Usec usec) { return core::formatDuration(usec, core::USEC_PER_MSEC); }

std::string quoted(const std::string& text) {
    // Unit names from other inits are not guaranteed UTF-8; replace rather than fail.
    return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write(const fmt::memory_buffer& out) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    finishOutput("the replay");
}

void Replay::printText(bool utc) const {
    const auto& list = evaluator_.ruleSet().rules;
    fmt::memory_buffer out;
    if (transitions_ == 0) {
        fmt::format_to(std::back_inserter(out), "no transitions in this time range\n");
    } else {
        fmt::format_to(std::back_inserter(out), "{} from {} to {}, {}\n",
                       core::plural(transitions_, "transition"), core::formatTime(first_usec_, utc),
                       core::formatTime(last_usec_, utc),
                       core::plural(records_.size(), "alert change"));
    }
    if (!records_.empty()) {
        std::vector<std::vector<std::string>> rows;
        rows.reserve(records_.size() + 1);
        rows.push_back({"TIME", "CHANGE", "RULE", "UNIT", "COUNT", "TIME-TO-FIRE", "REASON"});
        for (const auto& r : records_)
            rows.push_back({core::formatTime(r.at_usec, utc), kindWord(r.kind), list[r.rule].name,
                            unit_names_[r.unit], std::to_string(r.count),
                            r.time_to_fire_usec ? readable(*r.time_to_fire_usec) : "-",
                            r.kind == rules::ChangeKind::Resolve
                                ? std::string(rules::toString(r.reason))
                                : "-"});
        out.push_back('\n');
        fmt::format_to(std::back_inserter(out), "{}", formatTable(rows));
    }
    std::vector<std::vector<std::string>> rows;
    rows.push_back(
        {"RULE", "FIRED", "UNITS", "MEDIAN-TIME-TO-FIRE", "REPEATS", "RESOLVED", "FIRING-AT-END"});
    for (std::size_t r = 0; r < list.size(); ++r) {
        const RuleSummary& s = summaries_[r];
        const auto med = median(s.times_to_fire);
        rows.push_back({list[r].name, std::to_string(s.fired), std::to_string(distinct(s.units)),
                        med ? readable(*med) : "-", std::to_string(s.repeats),
                        std::to_string(s.resolved), std::to_string(s.fired - s.resolved)});
    }
    out.push_back('\n');
    fmt::format_to(std::back_inserter(out), "{}", formatTable(rows));
    write(out);
}

void Replay::printJson() const {
    const auto& list = evaluator_.ruleSet().rules;
    std::vector<std::string> rule_names;
    rule_names.reserve(list.size());
    for (const auto& rule : list) rule_names.push_back(quoted(rule.name));
    std::vector<std::string> unit_names(unit_names_.size());  // quoted on first use
    fmt::memory_buffer out;
    auto it = std::back_inserter(out);
    fmt::format_to(it, "{{\"transitions\": {}, \"changes\": [", transitions_);
    for (std::size_t i = 0; i < records_.size(); ++i) {
        const Record& r = records_[i];
        if (unit_names[r.unit].empty()) unit_names[r.unit] = quoted(unit_names_[r.unit]);
        fmt::format_to(
            it,
            "{}\n  {{\"time\": \"{}\", \"at_usec\": {}, \"change\": \"{}\", "
            "\"rule\": {}, \"unit\": {}, \"severity\": \"{}\", \"count\": {}, "
            "\"started\": \"{}\", \"started_usec\": {}, \"time_to_fire_usec\": {}, "
            "\"reason\": {}}}",
            i == 0 ? "" : ",", core::formatIsoTime(r.at_usec), r.at_usec, rules::toString(r.kind),
            rule_names[r.rule], unit_names[r.unit], rules::toString(list[r.rule].severity), r.count,
            core::formatIsoTime(r.started_usec), r.started_usec,
            r.time_to_fire_usec ? std::to_string(*r.time_to_fire_usec) : "null",
            r.kind == rules::ChangeKind::Resolve ? fmt::format("\"{}\"", rules::toString(r.reason))
                                                 : "null");
    }
    fmt::format_to(it, "{}], \"summary\": [", records_.empty() ? "" : "\n");
    for (std::size_t r = 0; r < list.size(); ++r) {
        const RuleSummary& s = summaries_[r];
        const auto med = median(s.times_to_fire);
        fmt::format_to(it,
                       "{}\n  {{\"rule\": {}, \"fired\": {}, \"units\": {}, "
                       "\"median_time_to_fire_usec\": {}, \"median_time_to_fire\": {}, "
                       "\"repeats\": {}, \"resolved\": {}, \"firing_at_end\": {}}}",
                       r == 0 ? "" : ",", rule_names[r], s.fired, distinct(s.units),
                       med ? std::to_string(*med) : "null",
                       med ? fmt::format("\"{}\"", readable(*med)) : "null", s.repeats, s.resolved,
                       s.fired - s.resolved);
    }
    fmt::format_to(it, "{}]}}\n", list.empty() ? "" : "\n");
    write(out);
}

int runReplay(const ReplayOptions& options) {
    const auto [since_usec, until_usec] =
        timeRange(options.since, options.until, core::SystemClock{}.realtime());
    Replay replay(loadRulesOrReport(rulesPaths(options.rules)));
    auto db = store::Database::open(options.db, store::OpenMode::ReadOnly);
    store::forEachTransition(db, since_usec, until_usec, [&replay](const core::Transition& t) {
        replay.observe(t);
        return true;
    });
    replay.finish(until_usec);
    if (options.json) {
        replay.printJson();
    } else {
        replay.printText(options.utc);
    }
    return 0;
}

}  // namespace

void addReplayCommand(CLI::App& app, Action& action) {
    const auto [cmd, options] = addDbCommand<ReplayOptions>(app, REPLAY_HELP);
    addRulesOption(cmd, options->rules)->type_name("PATH");
    addTimeRangeOptions(cmd, options->since, options->until,
                        "From this time (windows start empty): 'yesterday', '-2h', "
                        "'2026-12-01 14:00' (local time), ISO 8601 with an offset, @EPOCH",
                        "Before this time; timers due by then (resolves, repeats) still run");
    cmd->add_flag("--json", options->json,
                  "Print {\"transitions\": N, \"changes\": [...], \"summary\": [...]}");
    addUtcFlag(cmd, options->utc);
    setAction(cmd, action, options, runReplay);
}

}  // namespace cerberus::cli
