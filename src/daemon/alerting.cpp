#include "daemon/alerting.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/unit_name.hpp"

namespace cerberus::daemon {

namespace {

constexpr core::Usec HORIZON_MIN_USEC = core::USEC_PER_HOUR;
constexpr core::Usec HORIZON_MAX_USEC = 7 * core::USEC_PER_DAY;

store::AlertWrite::Kind kindOf(rules::ChangeKind kind) {
    switch (kind) {
    case rules::ChangeKind::Fire: return store::AlertWrite::Kind::Fire;
    case rules::ChangeKind::Repeat: return store::AlertWrite::Kind::Repeat;
    case rules::ChangeKind::Resolve: return store::AlertWrite::Kind::Resolve;
    case rules::ChangeKind::Count: return store::AlertWrite::Kind::Count;
    }
    return store::AlertWrite::Kind::Fire;
}

rules::EvaluatorOptions evaluatorOptions() {
    rules::EvaluatorOptions options;
    options.report_counts = true;
    return options;
}

// A firing alert as a Fire change at `at_usec` (told again: a replay's find, a silence's end).
rules::AlertChange changeOf(const rules::FiringAlert& alert, core::Usec at_usec) {
    rules::AlertChange change;
    change.kind = rules::ChangeKind::Fire;
    change.rule = alert.rule;
    change.unit = alert.unit;
    change.severity = alert.severity;
    change.count = alert.count;
    change.started_usec = alert.started_usec;
    change.at_usec = at_usec;
    change.sources = alert.sources;
    return change;
}

}  // namespace

rules::RuleSet loadRulesOrThrow(const std::vector<std::string>& paths) {
    auto loaded = rules::loadRules(paths);
    if (loaded.ok()) return std::move(loaded.rules);
    std::string message = "the rules are invalid:";
    for (const auto& error : loaded.errors) message += "\n  " + error;
    throw core::Error(core::ExitCode::Failure, message);
}

core::Usec replayHorizon(const rules::RuleSet& rules) {
    core::Usec horizon = HORIZON_MIN_USEC;
    for (const auto& rule : rules.rules) {
        const core::Usec need = rule.when.within_usec + rule.resolve_when_up_for_usec +
                                rule.repeat_every_usec.value_or(0);
        horizon = std::max(horizon, need);
    }
    return std::min(horizon, HORIZON_MAX_USEC);
}

Alerting::Alerting(rules::RuleSet rules, store::Database& db, store::HistoryWriter& writer,
                   std::string host, notify::JournalReader* journal)
    : evaluator_(std::move(rules), evaluatorOptions()),
      db_(db),
      writer_(writer),
      host_(std::move(host)),
      journal_(journal) {}

std::vector<store::OutboxWrite> Alerting::outbox(const rules::AlertChange& change,
                                                 notify::Change kind) {
    const auto* rule = evaluator_.ruleSet().rule(change.rule);
    if (!rule) return {};
    notify::Notification n;
    n.action = kind == notify::Change::Resolve ? notify::Action::Resolve : notify::Action::Trigger;
    n.change = kind;
    if (kind == notify::Change::Resolve) {
        n.reason = std::string(rules::toString(change.reason));
        n.resolved_usec = change.at_usec;
    }
    n.rule = change.rule;
    n.unit = change.unit;
    n.host = host_;
    n.severity = change.severity;
    n.event = rule->when.event;
    n.count = change.count;
    n.within_usec = rule->when.within_usec;
    n.started_usec = change.started_usec;
    n.summary = rules::renderSummary(*rule, {change.unit, host_, change.count});
    n.labels = rule->labels;
    for (const auto source : change.sources) n.sources.emplace_back(core::toString(source));
    if (const auto& end = change.last_end) {
        n.last_exit = notify::LastExit{end->result, end->exit_code, end->exit_status};
        if (journal_ && kind != notify::Change::Resolve && !rule->notify.empty())
            n.journal = journal_->lastLines(change.unit, end->invocation_id, rule->journal_lines);
    }
    n.id = notify::stableId(n, change.at_usec);
    // Every change told is also a journal entry, receivers or not, when cerberus logs to
    // the journal (a run from a terminal or a test leaves the host's journal alone).
    if (core::stderrIsJournal()) notify::journalAlert(n);
    if (rule->notify.empty()) return {};
    const std::string payload = notify::encode(n);
    std::vector<store::OutboxWrite> rows;
    for (const auto& receiver : rule->notify)
        rows.push_back({receiver, std::string(notify::toString(n.action)), payload});
    return rows;
}

store::Result<store::Done> Alerting::rebuild(core::Usec now_usec) {
    return reload(evaluator_.ruleSet(), now_usec);
}

void Alerting::start(core::Usec now_usec) {
    adopt(replay(evaluator_.ruleSet(), now_usec).orThrow(), now_usec);
    for (const auto& row : store::loadUnevaluated(db_)) {
        observe(row.transition);
        writer_.markEvaluated(row.id);
    }
    tick(now_usec);
}

store::Result<Alerting::Replayed> Alerting::replay(rules::RuleSet rules,
                                                   core::Usec now_usec) const {
    const core::Usec since = now_usec - replayHorizon(rules);
    Replayed out{rules::Evaluator(std::move(rules), evaluatorOptions()), {}};
    // What the replay decides was already decided (and recorded) when it happened.
    std::vector<rules::AlertChange> decided;
    const auto read = store::tryForEachTransition(
        db_, since, std::nullopt,
        [&out, &decided](const core::Transition& t) {
            decided.clear();
            out.evaluator.observe(t, t.ts_usec, decided);
            return true;
        },
        true);
    if (!read.ok()) return store::Failure{read.error()};
    auto recorded = store::tryQueryAlerts(db_, "firing");
    if (!recorded.ok()) return store::Failure{recorded.error()};
    out.recorded = std::move(recorded.value());
    return out;
}

void Alerting::adopt(Replayed replayed, core::Usec now_usec) {
    evaluator_ = std::move(replayed.evaluator);
    // Alerts a silence held back before cerberus stopped are told when it ends.
    silenced_.clear();
    for (const auto& alert : replayed.recorded) {
        if (alert.silenced)
            silenced_[{alert.rule, alert.unit}] =
                silencedUntil(alert.rule, alert.unit, now_usec).value_or(now_usec);
    }
    settle(replayed.recorded, now_usec);
}

// The replay decides with the rules now in force; the alerts table holds what earlier rules
// decided. A rule added (or changed) by a reload, or while cerberus was stopped, may find a
// unit firing that no row says was told: it is fired and told now. A firing row whose rule
// is gone, or no longer covers its unit, would stay firing forever: it is resolved (told
// to the rule's receivers when the rule is still there). Other firing rows the replay does
// not see firing stay: a unit that gave up days ago is older than the replay's horizon.
void Alerting::settle(const std::vector<store::StoredAlert>& recorded, core::Usec now_usec) {
    std::set<std::pair<std::string, std::string>> told;
    for (const auto& alert : recorded) told.insert({alert.rule, alert.unit});
    scratch_.clear();
    for (const auto& firing : evaluator_.firing()) {
        if (told.count({firing.rule, firing.unit})) continue;
        scratch_.push_back(changeOf(firing, now_usec));
    }
    handle(scratch_);
    for (const auto& alert : recorded) {
        const rules::Rule* rule = evaluator_.ruleSet().rule(alert.rule);
        if (rule && rule->matchesUnit(alert.unit)) continue;
        rules::AlertChange change;
        change.kind = rules::ChangeKind::Resolve;
        change.rule = alert.rule;
        change.unit = alert.unit;
        if (const auto severity = rules::parseSeverity(alert.severity)) change.severity = *severity;
        change.count = static_cast<std::size_t>(alert.count);
        change.started_usec = alert.started_usec;
        change.at_usec = now_usec;
        store::AlertWrite write;
        write.kind = store::AlertWrite::Kind::Resolve;
        write.rule = alert.rule;
        write.unit = alert.unit;
        write.count = alert.count;
        write.at_usec = now_usec;
        if (rule && !alert.silenced) write.notifications = outbox(change, notify::Change::Resolve);
        writer_.addAlert(std::move(write));
    }
}

std::optional<core::Usec> Alerting::silencedUntil(const std::string& rule, const std::string& unit,
                                                  core::Usec now_usec) {
    const auto silences = store::listSilences(db_, true, now_usec);
    if (!silences.ok()) {
        // A silence that cannot be read must not swallow an alert.
        core::log(core::Priority::Warning, silences.error() + "; telling the alert");
        return std::nullopt;
    }
    std::optional<core::Usec> until;
    for (const auto& silence : silences.value()) {
        if (!silence.rule.empty() && silence.rule != rule) continue;
        // `silence add -u web` means web.service, as journalctl -u does.
        if (!core::unitMatches(silence.unit_glob, unit)) continue;
        until = std::max(until.value_or(0), silence.ends_usec);
    }
    return until;
}

void Alerting::endSilences(core::Usec now_usec) {
    const auto firing = evaluator_.firing();
    for (auto it = silenced_.begin(); it != silenced_.end();) {
        if (it->second > now_usec) {
            ++it;
            continue;
        }
        const auto& [rule, unit] = it->first;
        if (const auto until = silencedUntil(rule, unit, now_usec)) {
            it->second = *until;  // another silence still covers it
            ++it;
            continue;
        }
        // The key, not its bindings: clang 14 (clang-tidy) cannot capture a binding.
        const auto& key = it->first;
        const auto alert = std::find_if(firing.begin(), firing.end(), [&key](const auto& a) {
            return a.rule == key.first && a.unit == key.second;
        });
        if (alert != firing.end()) {
            const rules::AlertChange change = changeOf(*alert, now_usec);
            store::AlertWrite write;
            write.kind = store::AlertWrite::Kind::Unsilence;
            write.rule = rule;
            write.unit = unit;
            write.at_usec = now_usec;
            write.notifications = outbox(change, notify::Change::Unsilence);
            writer_.addAlert(std::move(write));
        }
        it = silenced_.erase(it);
    }
}

void Alerting::observe(const core::Transition& transition) {
    scratch_.clear();
    evaluator_.observe(transition, transition.ts_usec, scratch_);
    handle(scratch_);
}

std::optional<core::Usec> Alerting::nextDeadline() const {
    auto next = evaluator_.nextDeadline();
    for (const auto& [key, until] : silenced_)
        if (!next || until < *next) next = until;
    return next;
}

void Alerting::tick(core::Usec now_usec) {
    scratch_.clear();
    evaluator_.tick(now_usec, scratch_);
    handle(scratch_);
    endSilences(now_usec);
}

store::Result<store::Done> Alerting::reload(rules::RuleSet rules, core::Usec now_usec) {
    auto replayed = replay(std::move(rules), now_usec);
    if (!replayed.ok()) return store::Failure{replayed.error()};
    adopt(std::move(replayed.value()), now_usec);
    tick(now_usec);
    return store::Done{};
}

std::map<std::string, std::size_t> Alerting::firingByRule() const {
    std::map<std::string, std::size_t> out;
    for (const auto& rule : evaluator_.ruleSet().rules) out[rule.name] = 0;
    for (const auto& alert : evaluator_.firing()) ++out[alert.rule];
    return out;
}

void Alerting::handle(const std::vector<rules::AlertChange>& changes) {
    for (const auto& change : changes) {
        store::AlertWrite write;
        write.kind = kindOf(change.kind);
        write.rule = change.rule;
        write.unit = change.unit;
        write.host = host_;
        write.severity = std::string(rules::toString(change.severity));
        write.count = static_cast<std::int64_t>(change.count);
        write.started_usec = change.started_usec;
        write.at_usec = change.at_usec;
        if (change.kind == rules::ChangeKind::Count) {
            writer_.addAlert(std::move(write));
            continue;
        }

        // Silenced alerts are recorded, not told; the silence's end is a deadline.
        const std::pair<std::string, std::string> key{change.rule, change.unit};
        bool quiet = silenced_.count(key) > 0;
        if (change.kind == rules::ChangeKind::Fire) {
            if (const auto until = silencedUntil(change.rule, change.unit, change.at_usec)) {
                silenced_[key] = *until;
                write.silenced = quiet = true;
            }
        } else if (change.kind == rules::ChangeKind::Resolve) {
            silenced_.erase(key);
        } else if (quiet && !silencedUntil(change.rule, change.unit, change.at_usec)) {
            silenced_[key] = change.at_usec;  // expired early: told at the next tick
        }
        if (!quiet) {
            notify::Change kind = notify::Change::Fire;
            if (change.kind == rules::ChangeKind::Repeat) kind = notify::Change::Repeat;
            if (change.kind == rules::ChangeKind::Resolve) kind = notify::Change::Resolve;
            write.notifications = outbox(change, kind);
        }
        writer_.addAlert(std::move(write));
    }
}

}  // namespace cerberus::daemon
