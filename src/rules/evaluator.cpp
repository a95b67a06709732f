#include "rules/evaluator.hpp"

#include <algorithm>
#include <compare>
#include <set>
#include <unordered_map>

#include "core/names.hpp"

namespace cerberus::rules {

namespace {

using core::Event;
using core::Transition;
using core::Usec;

// A set of sources, one bit each.
using SourceMask = std::uint8_t;
SourceMask bitOf(core::Source source) {
    return static_cast<SourceMask>(1U << static_cast<unsigned>(source));
}

std::vector<core::Source> sourcesOf(SourceMask mask) {
    std::vector<core::Source> out;
    for (const auto source : core::SOURCES)
        if (mask & bitOf(source)) out.push_back(source);
    return out;
}

// The last `count` qualifying events (time and source) of one (rule, unit): O(1) per
// event, and memory bounded by the rule's count.
class Ring {
public:
    void push(Usec t, core::Source source, std::size_t capacity) {
        if (events_.empty()) events_.resize(capacity);
        if (size_ < capacity) {
            events_[(head_ + size_) % capacity] = {t, source};
            ++size_;
        } else {
            events_[head_] = {t, source};
            head_ = (head_ + 1) % capacity;
        }
    }
    std::size_t size() const { return size_; }
    Usec oldest() const { return events_[head_].first; }
    SourceMask sources() const {
        SourceMask mask = 0;
        for (std::size_t i = 0; i < size_; ++i)
            mask |= bitOf(events_[(head_ + i) % events_.size()].second);
        return mask;
    }
    void clear() { head_ = size_ = 0; }

private:
    std::vector<std::pair<Usec, core::Source>> events_;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

struct Alert {
    bool firing = false;
    Usec started_usec = 0;
    std::size_t count = 0;
    SourceMask sources = 0;  // of the events that fired it
    Usec last_notified_usec = 0;
    std::optional<Usec> resolve_at;
    std::optional<Usec> repeat_at;
};

struct RuleState {
    std::uint32_t rule = 0;
    Ring window;
    Alert alert;
};

struct UnitState {
    std::string name;
    std::vector<RuleState> rules;   // only the rules whose globs match this unit
    std::optional<Usec> run_start;  // last start, or restart (the manager spawning a run)
    std::optional<Usec> up_since;
    std::optional<RunEnd> last_end;
    std::optional<Usec> last_end_uptime;
    std::optional<Usec> stop_confirm_at;
    std::size_t firing = 0;
};

enum class DeadlineKind : std::uint8_t { StopConfirm, Resolve, Repeat };

struct Deadline {
    Usec at = 0;
    std::uint32_t unit = 0;
    std::uint32_t slot = 0;  // index into UnitState::rules
    DeadlineKind kind = DeadlineKind::Resolve;
    auto operator<=>(const Deadline&) const = default;
};

// What a rule's filters read from one transition.
struct Facts {
    std::optional<Usec> uptime;
    std::string result;
    std::optional<int> exit_status;
};

bool endsRun(Event e) { return e == Event::Stop || e == Event::Crash; }
bool leavesUp(Event e) { return e != Event::Start && e != Event::Restart; }

// A stop is clean by definition; inferred rows carry no Result.
std::string effectiveResult(const Transition& t) {
    if (t.result.empty() && t.event == Event::Stop) return "success";
    return t.result;
}

}  // namespace

struct Evaluator::State {
    RuleSet rules;
    EvaluatorOptions options;
    std::vector<UnitState> units;
    std::unordered_map<std::string, std::uint32_t> unit_index;
    std::set<Deadline> deadlines;

    UnitState& unitFor(const std::string& name, std::uint32_t& index) {
        if (auto it = unit_index.find(name); it != unit_index.end()) {
            index = it->second;
            return units[index];
        }
        index = static_cast<std::uint32_t>(units.size());
        UnitState unit;
        unit.name = name;
        for (std::uint32_t r = 0; r < rules.rules.size(); ++r)
            if (rules.rules[r].matchesUnit(name)) unit.rules.push_back(RuleState{r, {}, {}});
        units.push_back(std::move(unit));
        unit_index.emplace(name, index);
        return units[index];
    }

    void arm(std::optional<Usec>& slot_at, Usec at, std::uint32_t unit, std::uint32_t slot,
             DeadlineKind kind) {
        disarm(slot_at, unit, slot, kind);
        slot_at = at;
        deadlines.insert(Deadline{at, unit, slot, kind});
    }

    void disarm(std::optional<Usec>& slot_at, std::uint32_t unit, std::uint32_t slot,
                DeadlineKind kind) {
        if (!slot_at) return;
        deadlines.erase(Deadline{*slot_at, unit, slot, kind});
        slot_at.reset();
    }

    AlertChange change(ChangeKind kind, const UnitState& unit, const RuleState& rs, Usec at) const {
        const Rule& rule = rules.rules[rs.rule];
        AlertChange c;
        c.kind = kind;
        c.rule = rule.name;
        c.unit = unit.name;
        c.severity = rule.severity;
        c.count = rs.alert.count;
        c.started_usec = rs.alert.started_usec;
        c.at_usec = at;
        c.last_end = unit.last_end;
        c.sources = sourcesOf(rs.alert.sources);
        return c;
    }

    void fire(std::uint32_t u, std::uint32_t slot, Usec at, std::vector<AlertChange>& out) {
        UnitState& unit = units[u];
        RuleState& rs = unit.rules[slot];
        const Rule& rule = rules.rules[rs.rule];
        rs.alert.firing = true;
        rs.alert.started_usec = at;
        rs.alert.count = rs.window.size();
        rs.alert.sources = rs.window.sources();
        rs.alert.last_notified_usec = at;
        rs.window.clear();
        ++unit.firing;
        if (rule.repeat_every_usec)
            arm(rs.alert.repeat_at, at + *rule.repeat_every_usec, u, slot, DeadlineKind::Repeat);
        if (unit.up_since)
            arm(rs.alert.resolve_at, *unit.up_since + rule.resolve_when_up_for_usec, u, slot,
                DeadlineKind::Resolve);
        out.push_back(change(ChangeKind::Fire, unit, rs, at));
    }

    void resolve(std::uint32_t u, std::uint32_t slot, Usec at, ResolveReason reason,
                 std::vector<AlertChange>& out) {
        UnitState& unit = units[u];
        RuleState& rs = unit.rules[slot];
        AlertChange c = change(ChangeKind::Resolve, unit, rs, at);
        c.reason = reason;
        out.push_back(std::move(c));
        disarm(rs.alert.resolve_at, u, slot, DeadlineKind::Resolve);
        disarm(rs.alert.repeat_at, u, slot, DeadlineKind::Repeat);
        rs.alert = {};
        rs.window.clear();
        --unit.firing;
    }

    void runDeadline(const Deadline& d, std::vector<AlertChange>& out) {
        UnitState& unit = units[d.unit];
        switch (d.kind) {
        case DeadlineKind::StopConfirm:
            unit.stop_confirm_at.reset();
            for (std::uint32_t slot = 0; slot < unit.rules.size(); ++slot)
                if (unit.rules[slot].alert.firing)
                    resolve(d.unit, slot, d.at, ResolveReason::OperatorStop, out);
            break;
        case DeadlineKind::Resolve:
            unit.rules[d.slot].alert.resolve_at.reset();
            resolve(d.unit, d.slot, d.at, ResolveReason::UpFor, out);
            break;
        case DeadlineKind::Repeat: {
            RuleState& rs = unit.rules[d.slot];
            rs.alert.repeat_at.reset();
            rs.alert.last_notified_usec = d.at;
            out.push_back(change(ChangeKind::Repeat, unit, rs, d.at));
            arm(rs.alert.repeat_at, d.at + *rules.rules[rs.rule].repeat_every_usec, d.unit, d.slot,
                DeadlineKind::Repeat);
            break;
        }
        }
    }

    void tick(Usec now, std::vector<AlertChange>& out) {
        while (!deadlines.empty() && deadlines.begin()->at <= now) {
            const Deadline d = *deadlines.begin();
            deadlines.erase(deadlines.begin());
            runDeadline(d, out);
        }
    }

    Facts factsOf(const UnitState& unit, const Transition& t) const {
        Facts f = observedFacts(unit, t);
        if (t.source == core::Source::Reconcile && t.unwatched_since_usec) {
            // Runs nobody saw: none lasted longer than the time nobody watched.
            f.uptime = std::max(f.uptime.value_or(0), t.ts_usec - *t.unwatched_since_usec);
        }
        return f;
    }

    Facts observedFacts(const UnitState& unit, const Transition& t) const {
        const Usec ts = t.ts_usec;
        Facts f;
        if (t.event == Event::Start) {
            f.result = effectiveResult(t);
            f.exit_status = t.exit_status;
            return f;
        }
        if (endsRun(t.event)) {
            if (unit.run_start) f.uptime = ts - *unit.run_start;
            f.result = effectiveResult(t);
            f.exit_status = t.exit_status;
            return f;
        }
        // restart, fail, give_up follow a run end: they speak for the run that ended.
        const bool end_of_this_cycle =
            unit.last_end && (!unit.run_start || unit.last_end->ts_usec >= *unit.run_start);
        if (end_of_this_cycle) {
            f.uptime = unit.last_end_uptime;
            f.exit_status = unit.last_end->exit_status;
            f.result = unit.last_end->result;
            if (unit.last_end->result.empty() && unit.last_end->event == Event::Stop)
                f.result = "success";
        } else if (unit.run_start) {
            f.uptime = ts - *unit.run_start;
        }
        if (t.event != Event::Restart && !t.result.empty()) f.result = t.result;
        return f;
    }

    static bool qualifies(const Condition& c, const Transition& t, const Facts& f) {
        if (t.event != c.event) return false;
        // Inferred at reconcile: it happened while nobody watched, at a time not known. It
        // counts only with a known earliest time (then its run lasted no longer than that
        // span); the window takes it at that earliest time, so a long absence fires nothing.
        if (t.source == core::Source::Reconcile && !t.unwatched_since_usec) return false;
        if (!c.sources.empty() &&
            std::find(c.sources.begin(), c.sources.end(), t.source) == c.sources.end())
            return false;
        if (c.uptime_below_usec && f.uptime && *f.uptime >= *c.uptime_below_usec) return false;
        if (!c.results.empty() &&
            std::find(c.results.begin(), c.results.end(), f.result) == c.results.end())
            return false;
        if (!c.exit_statuses.empty() &&
            (!f.exit_status || std::find(c.exit_statuses.begin(), c.exit_statuses.end(),
                                         *f.exit_status) == c.exit_statuses.end()))
            return false;
        return true;
    }

    void process(const Transition& t, std::vector<AlertChange>& out) {
        std::uint32_t u = 0;
        UnitState& unit = unitFor(t.unit, u);
        const Usec ts = t.ts_usec;
        // Anything the unit does after a clean stop says the stop was not the end.
        if (unit.stop_confirm_at) disarm(unit.stop_confirm_at, u, 0, DeadlineKind::StopConfirm);

        const Facts facts = factsOf(unit, t);

        switch (t.event) {
        case Event::Start:
            unit.run_start = ts;
            unit.up_since = ts;
            break;
        case Event::Restart:
            unit.run_start = ts;
            unit.up_since.reset();
            break;
        case Event::Stop:
        case Event::Crash:
            unit.last_end =
                RunEnd{ts, t.event, t.result, t.exit_code, t.exit_status, t.invocation_id};
            unit.last_end_uptime = facts.uptime;
            unit.up_since.reset();
            break;
        case Event::Fail:
        case Event::GiveUp: unit.up_since.reset(); break;
        }

        for (std::uint32_t slot = 0; slot < unit.rules.size(); ++slot) {
            RuleState& rs = unit.rules[slot];
            const Rule& rule = rules.rules[rs.rule];
            if (rs.alert.firing) {
                if (t.event == Event::Start) {
                    arm(rs.alert.resolve_at, ts + rule.resolve_when_up_for_usec, u, slot,
                        DeadlineKind::Resolve);
                } else if (leavesUp(t.event)) {
                    disarm(rs.alert.resolve_at, u, slot, DeadlineKind::Resolve);
                }
                if (qualifies(rule.when, t, facts)) {
                    ++rs.alert.count;
                    if (options.report_counts)
                        out.push_back(change(ChangeKind::Count, unit, rs, ts));
                }
                continue;
            }
            if (!qualifies(rule.when, t, facts)) continue;
            const auto count = static_cast<std::size_t>(rule.when.count);
            const Usec at = t.source == core::Source::Reconcile && t.unwatched_since_usec
                                ? *t.unwatched_since_usec
                                : ts;
            rs.window.push(at, t.source, count);
            // Inclusive: the count-th event exactly `within` after the first still fires.
            if (rs.window.size() == count &&
                (count == 1 || ts - rs.window.oldest() <= rule.when.within_usec))
                fire(u, slot, ts, out);
        }

        if (t.event == Event::Stop && unit.firing > 0 && t.sub_state != "auto-restart")
            arm(unit.stop_confirm_at, ts + options.operator_stop_confirm_usec, u, 0,
                DeadlineKind::StopConfirm);
    }
};

namespace {

constexpr core::EnumName<ChangeKind> CHANGE_KIND_NAMES[] = {{ChangeKind::Fire, "fire"},
                                                            {ChangeKind::Repeat, "repeat"},
                                                            {ChangeKind::Resolve, "resolve"},
                                                            {ChangeKind::Count, "count"}};

constexpr core::EnumName<ResolveReason> RESOLVE_REASON_NAMES[] = {
    {ResolveReason::None, "none"},
    {ResolveReason::UpFor, "up"},
    {ResolveReason::OperatorStop, "operator-stop"}};

}  // namespace

std::string_view toString(ChangeKind kind) { return core::nameOf(CHANGE_KIND_NAMES, kind); }

std::string_view toString(ResolveReason reason) {
    return core::nameOf(RESOLVE_REASON_NAMES, reason);
}

Evaluator::Evaluator(RuleSet rules, EvaluatorOptions options) : state_(std::make_unique<State>()) {
    state_->rules = std::move(rules);
    state_->options = options;
}

Evaluator::~Evaluator() = default;
Evaluator::Evaluator(Evaluator&&) noexcept = default;
Evaluator& Evaluator::operator=(Evaluator&&) noexcept = default;

void Evaluator::observe(const Transition& transition, Usec now_usec,
                        std::vector<AlertChange>& out) {
    state_->tick(transition.ts_usec, out);
    state_->process(transition, out);
    state_->tick(now_usec, out);
}

std::vector<AlertChange> Evaluator::observe(const Transition& transition, Usec now_usec) {
    std::vector<AlertChange> out;
    observe(transition, now_usec, out);
    return out;
}

void Evaluator::tick(Usec now_usec, std::vector<AlertChange>& out) { state_->tick(now_usec, out); }

std::vector<AlertChange> Evaluator::tick(Usec now_usec) {
    std::vector<AlertChange> out;
    tick(now_usec, out);
    return out;
}

std::optional<Usec> Evaluator::nextDeadline() const {
    if (state_->deadlines.empty()) return std::nullopt;
    return state_->deadlines.begin()->at;
}

std::vector<AlertChange> Evaluator::replay(std::span<const Transition> history,
                                           std::optional<Usec> until_usec) {
    std::vector<AlertChange> out;
    for (const auto& t : history) observe(t, t.ts_usec, out);
    if (until_usec) tick(*until_usec, out);
    return out;
}

std::vector<FiringAlert> Evaluator::firing() const {
    std::vector<FiringAlert> out;
    for (const auto& unit : state_->units) {
        for (const auto& rs : unit.rules) {
            if (!rs.alert.firing) continue;
            const Rule& rule = state_->rules.rules[rs.rule];
            out.push_back(FiringAlert{rule.name, unit.name, rule.severity, rs.alert.count,
                                      rs.alert.started_usec, rs.alert.last_notified_usec,
                                      sourcesOf(rs.alert.sources)});
        }
    }
    return out;
}

const RuleSet& Evaluator::ruleSet() const { return state_->rules; }

std::size_t Evaluator::unitsTracked() const { return state_->units.size(); }

}  // namespace cerberus::rules
