#pragma once

// The pure evaluator: (state, Transition, now) -> [AlertChange], with no clock but the
// times it is given. The daemon feeds it live, `cerberus replay` and start-up feed it
// history: the same code path, so a rebuilt state is the state that would have been.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"
#include "rules/rules.hpp"

namespace cerberus::rules {

// Count: a firing alert counted one more qualifying event (only with report_counts).
enum class ChangeKind : std::uint8_t { Fire, Repeat, Resolve, Count };
std::string_view toString(ChangeKind kind);

enum class ResolveReason : std::uint8_t { None, UpFor, OperatorStop };
std::string_view toString(ResolveReason reason);

// How the unit's last run ended: what a notification shows as "last exit" and the
// InvocationID whose journal it quotes.
struct RunEnd {
    core::Usec ts_usec = 0;
    core::Event event = core::Event::Crash;
    std::string result;
    std::string exit_code;
    std::optional<int> exit_status;
    std::string invocation_id;

    bool operator==(const RunEnd&) const = default;
};

struct AlertChange {
    ChangeKind kind = ChangeKind::Fire;
    std::string rule;
    std::string unit;
    Severity severity = Severity::Error;
    std::size_t count = 0;  // qualifying events since the alert started
    core::Usec started_usec = 0;
    core::Usec at_usec = 0;  // the transition's time, or the deadline's
    ResolveReason reason = ResolveReason::None;
    std::optional<RunEnd> last_end;
    // Where the events that fired the alert came from, in core::SOURCES order; the same for
    // every change of one alert, so that receivers keying on it see one alert.
    std::vector<core::Source> sources;
};

struct FiringAlert {
    std::string rule;
    std::string unit;
    Severity severity = Severity::Error;
    std::size_t count = 0;
    core::Usec started_usec = 0;
    core::Usec last_notified_usec = 0;
    std::vector<core::Source> sources;  // as in AlertChange
};

struct EvaluatorOptions {
    // A clean stop not followed by a restart or start within this time was an operator's.
    // A respawn stores stop then restart, and the restart comes after RestartSec.
    core::Usec operator_stop_confirm_usec = 5 * core::USEC_PER_SEC;
    // Emit a Count change each time a firing alert counts another event, so that what is
    // stored says how many happened since it fired.
    bool report_counts = false;
};

class Evaluator {
public:
    explicit Evaluator(RuleSet rules, EvaluatorOptions options = {});
    ~Evaluator();
    Evaluator(Evaluator&&) noexcept;
    Evaluator& operator=(Evaluator&&) noexcept;
    Evaluator(const Evaluator&) = delete;
    Evaluator& operator=(const Evaluator&) = delete;

    // Deadlines due by the transition's time, then the transition, then deadlines due by
    // `now_usec`. Changes are appended to `out` in the order they happened.
    void observe(const core::Transition& transition, core::Usec now_usec,
                 std::vector<AlertChange>& out);
    std::vector<AlertChange> observe(const core::Transition& transition, core::Usec now_usec);

    // Runs every deadline due at or before `now_usec` (resolve timers, repeats, stop
    // confirmations). Call it when the timer armed at nextDeadline() expires.
    void tick(core::Usec now_usec, std::vector<AlertChange>& out);
    std::vector<AlertChange> tick(core::Usec now_usec);

    // The earliest pending deadline: the one timer the daemon arms. nullopt: none.
    std::optional<core::Usec> nextDeadline() const;

    // History in stored order, each transition observed at its own time; then, with
    // `until_usec`, the deadlines due by then.
    std::vector<AlertChange> replay(std::span<const core::Transition> history,
                                    std::optional<core::Usec> until_usec = std::nullopt);

    std::vector<FiringAlert> firing() const;
    const RuleSet& ruleSet() const;
    std::size_t unitsTracked() const;

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace cerberus::rules
