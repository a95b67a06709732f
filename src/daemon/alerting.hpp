#pragma once

// The rules side of the daemon: feeds transitions to the Evaluator, records every alert
// change with the transitions that caused it, and tells the `log` receivers.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"
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
    Alerting(rules::RuleSet rules, store::Database& db, store::HistoryWriter& writer,
             std::string host);

    // Rebuilds every window from the stored history (nothing is told again), then applies
    // what fell due while cerberus was not running.
    void rebuild(core::Usec now_usec);
    void observe(const core::Transition& transition);
    std::optional<core::Usec> nextDeadline() const;  // wall clock
    void tick(core::Usec now_usec);
    // Replaces the rules; an invalid set is refused with the reason and the old set stays.
    bool reload(const std::vector<std::string>& paths, core::Usec now_usec);

    std::size_t firing() const { return evaluator_.firing().size(); }
    std::size_t ruleCount() const { return evaluator_.ruleSet().rules.size(); }

private:
    void handle(const std::vector<rules::AlertChange>& changes);
    void announceReceivers() const;
    // The end of the longest active silence covering (rule, unit), if any.
    std::optional<core::Usec> silencedUntil(const std::string& rule, const std::string& unit,
                                            core::Usec now_usec);
    void endSilences(core::Usec now_usec);
    void tell(const rules::AlertChange& change, const char* what);

    rules::Evaluator evaluator_;
    store::Database& db_;
    store::HistoryWriter& writer_;
    // Firing alerts held back by a silence, and when that silence ends.
    std::map<std::pair<std::string, std::string>, core::Usec> silenced_;
    std::string host_;
    std::vector<rules::AlertChange> scratch_;
};

}  // namespace cerberus::daemon
