#pragma once

// The rules side of the daemon: feeds transitions to the Evaluator and records every alert
// change, with one outbox row per receiver to tell, in the same transaction as the
// transitions that caused it.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"
#include "notify/journal.hpp"
#include "notify/payload.hpp"
#include "rules/evaluator.hpp"
#include "rules/rules.hpp"
#include "store/store.hpp"

namespace cerberus::daemon {

// Loads rule files; throws core::Error(ExitCode::Failure) listing every error.
rules::RuleSet loadRulesOrThrow(const std::vector<std::string>& paths);

// How far back start-up and reload replay history to rebuild the windows of `rules`.
core::Usec replayHorizon(const rules::RuleSet& rules);

class Alerting {
public:
    // `journal` (may be null) supplies the crashed run's last lines for each alert.
    Alerting(rules::RuleSet rules, store::Database& db, store::HistoryWriter& writer,
             std::string host, notify::JournalReader* journal = nullptr);

    // Rebuilds every window from the stored history (nothing is told again), then applies
    // what fell due while cerberus was not running. A history that cannot be read is the
    // Failure, and the windows in force stay as they were.
    store::Result<store::Done> rebuild(core::Usec now_usec);
    // rebuild() at start-up: the transitions `cerberus emit` stored while no daemon
    // listened are evaluated as if seen live (their alerts are told), and their marks are
    // cleared in the flush that records what they caused, so each is evaluated once. A
    // history that cannot be read stops the start-up: core::Error(Database).
    void start(core::Usec now_usec);
    void observe(const core::Transition& transition);
    std::optional<core::Usec> nextDeadline() const;  // wall clock
    void tick(core::Usec now_usec);
    // Replaces the rules (already validated) and rebuilds the windows from history. The new
    // windows are built in full before they replace the old: a history that cannot be read
    // is the Failure, and the rules and windows in force stay.
    store::Result<store::Done> reload(rules::RuleSet rules, core::Usec now_usec);

    std::size_t firing() const { return evaluator_.firing().size(); }
    // Every rule, with the number of its alerts firing now (silenced ones included).
    std::map<std::string, std::size_t> firingByRule() const;
    std::size_t ruleCount() const { return evaluator_.ruleSet().rules.size(); }
    const rules::RuleSet& rules() const { return evaluator_.ruleSet(); }
    const std::string& host() const { return host_; }

private:
    // What replaying the stored history with a rule set makes: its windows, and the alerts
    // recorded as firing.
    struct Replayed {
        rules::Evaluator evaluator;
        std::vector<store::StoredAlert> recorded;
    };
    // Replays the evaluated history into new windows for `rules`; reads only.
    store::Result<Replayed> replay(rules::RuleSet rules, core::Usec now_usec) const;
    // Puts the replayed windows in force and restores the silenced alerts.
    void adopt(Replayed replayed, core::Usec now_usec);
    // Brings the alerts table in line with what the replay found (see alerting.cpp).
    void settle(const std::vector<store::StoredAlert>& recorded, core::Usec now_usec);
    void handle(const std::vector<rules::AlertChange>& changes);
    // The rows telling each of the rule's receivers about `change`; the change is also
    // written to the journal.
    std::vector<store::OutboxWrite> outbox(const rules::AlertChange& change, notify::Change kind);
    // The end of the longest active silence covering (rule, unit), if any.
    std::optional<core::Usec> silencedUntil(const std::string& rule, const std::string& unit,
                                            core::Usec now_usec);
    void endSilences(core::Usec now_usec);

    rules::Evaluator evaluator_;
    store::Database& db_;
    store::HistoryWriter& writer_;
    // Firing alerts held back by a silence, and when that silence ends.
    std::map<std::pair<std::string, std::string>, core::Usec> silenced_;
    std::string host_;
    notify::JournalReader* journal_;
    std::vector<rules::AlertChange> scratch_;
};

}  // namespace cerberus::daemon
