#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "rules/evaluator.hpp"
#include "rules/rules.hpp"

using namespace cerberus;
using core::Event;
using core::Transition;
using core::Usec;
using rules::AlertChange;
using rules::ChangeKind;
using rules::Evaluator;
using rules::ResolveReason;

namespace {

const std::string SOURCE_ROOT = CERBERUS_SOURCE_ROOT;

constexpr Usec MS = core::USEC_PER_MSEC;
constexpr Usec SEC = core::USEC_PER_SEC;
constexpr Usec MIN = core::USEC_PER_MIN;
constexpr Usec T0 = 1'700'000'000 * SEC;

rules::RuleSet ruleSet(const std::string& rules_json) {
    const auto r = rules::parseRules(
        R"({"receivers": {"log": {"type": "log"}}, "rules": )" + rules_json + "}", "test.json");
    std::string errors;
    for (const auto& e : r.errors) errors += e + "\n";
    INFO(errors);
    REQUIRE(r.ok());
    return r.rules;
}

rules::RuleSet defaultRules() {
    const auto r = rules::loadRules({SOURCE_ROOT + "/rules/default.json"});
    REQUIRE(r.ok());
    return r.rules;
}

// Rows as the history writer stores them for one unit, on a clock the test moves.
class Unit {
public:
    explicit Unit(std::string name = "api.service", Usec start = T0)
        : name_(std::move(name)), now_(start) {}

    Usec now() const { return now_; }
    Unit& wait(Usec usec) {
        now_ += usec;
        return *this;
    }

    Transition row(Event event, std::string active, std::string sub, std::string result = "",
                   std::string exit_code = "", std::optional<int> status = std::nullopt) const {
        Transition t;
        t.ts_usec = now_;
        t.mono_usec = now_ - T0 + 1000 * SEC;
        t.unit = name_;
        t.event = event;
        t.active_state = std::move(active);
        t.sub_state = std::move(sub);
        t.result = std::move(result);
        t.exit_code = std::move(exit_code);
        t.exit_status = status;
        t.invocation_id = "inv" + std::to_string(now_);
        return t;
    }

    Transition start() const { return row(Event::Start, "active", "running", "success"); }
    Transition crash(int status = 3) const {
        return row(Event::Crash, "failed", "failed", "exit-code", "exited", status);
    }
    Transition fail() const { return row(Event::Fail, "failed", "failed", "exit-code"); }
    Transition restart() const { return row(Event::Restart, "activating", "auto-restart"); }
    Transition cleanExit() const {
        return row(Event::Stop, "inactive", "dead", "success", "exited", 0);
    }
    Transition operatorStop() const {
        return row(Event::Stop, "inactive", "dead", "success", "killed", 15);
    }
    Transition giveUp() const { return row(Event::GiveUp, "failed", "failed", "exit-code"); }

    // start, crash after `up`, fail, restart after `restart_sec`: one crash loop cycle.
    std::vector<Transition> crashCycle(Usec up, Usec restart_sec) {
        std::vector<Transition> rows{start()};
        wait(up);
        rows.push_back(crash());
        rows.push_back(fail());
        wait(restart_sec);
        rows.push_back(restart());
        return rows;
    }

    // start, exit 0 after `up`, restart after `restart_sec`: one respawn cycle.
    std::vector<Transition> respawnCycle(Usec up, Usec restart_sec) {
        std::vector<Transition> rows{start()};
        wait(up);
        rows.push_back(cleanExit());
        wait(restart_sec);
        rows.push_back(restart());
        return rows;
    }

private:
    std::string name_;
    Usec now_;
};

// The evaluator driven the way the daemon drives it: each row at its own time, and the
// one timer fired when the clock passes nextDeadline().
class Live {
public:
    explicit Live(rules::RuleSet rules, rules::EvaluatorOptions options = {})
        : evaluator_(std::move(rules), options) {}

    void feed(const Transition& t) {
        advance(t.ts_usec);
        evaluator_.observe(t, t.ts_usec, changes);
    }
    void feed(const std::vector<Transition>& rows) {
        for (const auto& t : rows) feed(t);
    }
    void advance(Usec now) {
        while (auto deadline = evaluator_.nextDeadline()) {
            if (*deadline > now) break;
            evaluator_.tick(*deadline, changes);
        }
    }

    std::vector<AlertChange> of(ChangeKind kind, std::string_view rule = {}) const {
        std::vector<AlertChange> out;
        for (const auto& c : changes)
            if (c.kind == kind && (rule.empty() || c.rule == rule)) out.push_back(c);
        return out;
    }

    Evaluator& evaluator() { return evaluator_; }
    std::vector<AlertChange> changes;

private:
    Evaluator evaluator_;
};

const std::string CRASH_3_IN_5M =
    R"([{"name": "crashloop", "when": {"event": "crash", "count": 3, "within": "5m"},
         "notify": ["log"]}])";

}  // namespace

TEST_CASE("exactly count qualifying events within the window fire once, at the count-th") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    live.feed(u.crash());
    live.feed(u.wait(1 * MIN).crash());
    CHECK(live.changes.empty());
    live.feed(u.wait(1 * MIN).crash());
    REQUIRE(live.changes.size() == 1);
    const auto& fire = live.changes[0];
    CHECK((fire.kind == ChangeKind::Fire));
    CHECK(fire.rule == "crashloop");
    CHECK(fire.unit == "api.service");
    CHECK(fire.count == 3);
    CHECK(fire.started_usec == T0 + 2 * MIN);
    CHECK(fire.at_usec == T0 + 2 * MIN);
    REQUIRE(fire.last_end.has_value());
    CHECK(fire.last_end->exit_status == 3);

    live.feed(u.wait(1 * SEC).crash());
    CHECK(live.of(ChangeKind::Fire).size() == 1);
    REQUIRE(live.evaluator().firing().size() == 1);
    CHECK(live.evaluator().firing()[0].count == 4);
}

TEST_CASE("count minus one events do not fire") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    live.feed(u.crash());
    live.feed(u.wait(1 * MIN).crash());
    live.advance(u.now() + 24 * 60 * MIN);
    CHECK(live.changes.empty());
    CHECK_FALSE(live.evaluator().nextDeadline().has_value());
}

TEST_CASE("the count-th event exactly within apart from the first still fires") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    live.feed(u.crash());
    live.feed(u.wait(2 * MIN).crash());
    live.feed(u.wait(3 * MIN).crash());
    CHECK(live.of(ChangeKind::Fire).size() == 1);
}

TEST_CASE("the count-th event one microsecond beyond the window does not fire") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    live.feed(u.crash());
    live.feed(u.wait(2 * MIN).crash());
    live.feed(u.wait(3 * MIN + 1).crash());
    CHECK(live.changes.empty());
    // The window slid: the 2nd, 3rd and a 4th crash soon after are three within 5 minutes.
    live.feed(u.wait(1 * SEC).crash());
    CHECK(live.of(ChangeKind::Fire).size() == 1);
}

TEST_CASE("a restart backoff that spreads crashes beyond the window does not fire") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    for (int i = 0; i < 20; ++i) live.feed(u.crashCycle(1 * SEC, 3 * MIN));
    CHECK(live.changes.empty());
}

TEST_CASE("uptime_below counts only runs that ended before staying up that long") {
    const auto rules = ruleSet(
        R"([{"name": "crashloop", "notify": ["log"],
             "when": {"event": "crash", "count": 3, "within": "5m", "uptime_below": "30s"}}])");
    SUBCASE("runs that stayed up a minute do not count") {
        Live live(rules);
        Unit u;
        for (int i = 0; i < 4; ++i) live.feed(u.crashCycle(1 * MIN, 100 * MS));
        CHECK(live.changes.empty());
    }
    SUBCASE("runs that stayed up 10 seconds count") {
        Live live(rules);
        Unit u;
        for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(10 * SEC, 100 * MS));
        CHECK(live.of(ChangeKind::Fire).size() == 1);
    }
    SUBCASE("a run whose start was never seen counts") {
        Live live(rules);
        Unit u;
        live.feed(u.crash());
        live.feed(u.wait(1 * SEC).crash());
        live.feed(u.wait(1 * SEC).crash());
        CHECK(live.of(ChangeKind::Fire).size() == 1);
    }
}

TEST_CASE("result and exit_status filters keep only matching crashes") {
    Live live(ruleSet(
        R"([{"name": "oom", "notify": ["log"],
             "when": {"event": "crash", "count": 2, "within": "1m", "result": ["oom-kill"]}},
            {"name": "exit-42", "notify": ["log"],
             "when": {"event": "crash", "count": 2, "within": "1m", "exit_status": [42]}}])"));
    Unit u;
    live.feed(u.crash(3));
    live.feed(u.wait(1 * SEC).crash(42));
    CHECK(live.changes.empty());
    live.feed(u.wait(1 * SEC).crash(42));
    CHECK(live.of(ChangeKind::Fire, "exit-42").size() == 1);
    live.feed(u.wait(1 * SEC).row(Event::Crash, "failed", "failed", "oom-kill", "killed", 9));
    live.feed(u.wait(1 * SEC).row(Event::Crash, "failed", "failed", "oom-kill", "killed", 9));
    CHECK(live.of(ChangeKind::Fire, "oom").size() == 1);
}

TEST_CASE("a sources filter counts only transitions from the listed sources") {
    Live live(ruleSet(
        R"([{"name": "emitted", "units": ["*"], "notify": ["log"],
             "when": {"event": "crash", "count": 2, "within": "1m", "sources": ["emit"]}},
            {"name": "any", "units": ["*"], "notify": ["log"],
             "when": {"event": "crash", "count": 2, "within": "1m"}}])"));
    Unit u("web");
    auto from = [](Transition t, core::Source source) {
        t.source = source;
        return t;
    };
    live.feed(from(u.crash(), core::Source::Systemd));
    // Found at a reconcile after a second nobody watched.
    auto reconciled = from(u.wait(1 * SEC).crash(), core::Source::Reconcile);
    reconciled.unwatched_since_usec = reconciled.ts_usec - 1 * SEC;
    live.feed(reconciled);
    CHECK(live.of(ChangeKind::Fire, "emitted").empty());
    REQUIRE(live.of(ChangeKind::Fire, "any").size() == 1);
    CHECK(live.of(ChangeKind::Fire, "any")[0].sources ==
          std::vector<core::Source>{core::Source::Systemd, core::Source::Reconcile});
    live.feed(from(u.wait(1 * SEC).crash(), core::Source::Emit));
    CHECK(live.of(ChangeKind::Fire, "emitted").empty());
    live.feed(from(u.wait(1 * SEC).crash(), core::Source::Emit));
    REQUIRE(live.of(ChangeKind::Fire, "emitted").size() == 1);
    CHECK(live.of(ChangeKind::Fire, "emitted")[0].sources ==
          std::vector<core::Source>{core::Source::Emit});
}

TEST_CASE("an alert keeps the sources that fired it through repeats, resolve and firing()") {
    Live live(ruleSet(
        R"([{"name": "loop", "units": ["*"], "notify": ["log"], "repeat_every": "1m",
             "resolve_when_up_for": "5m",
             "when": {"event": "crash", "count": 2, "within": "1m"}}])"));
    Unit u("upstart-web");
    for (int i = 0; i < 2; ++i) {
        auto t = u.wait(1 * SEC).crash();
        t.source = core::Source::Emit;
        live.feed(t);
    }
    // Counted after it fired, a supervisor crash does not change what the alert says.
    auto later = u.wait(1 * SEC).crash();
    later.source = core::Source::Supervisor;
    live.feed(later);
    const std::vector<core::Source> emit{core::Source::Emit};
    REQUIRE(live.evaluator().firing().size() == 1);
    CHECK(live.evaluator().firing()[0].sources == emit);
    CHECK(live.evaluator().firing()[0].count == 3);
    live.feed(u.wait(1 * SEC).start());
    live.advance(u.now() + 10 * MIN);
    REQUIRE(live.of(ChangeKind::Repeat).size() >= 1);
    CHECK(live.of(ChangeKind::Repeat)[0].sources == emit);
    REQUIRE(live.of(ChangeKind::Resolve).size() == 1);
    CHECK(live.of(ChangeKind::Resolve)[0].sources == emit);
}

TEST_CASE("rules see only the units their globs match") {
    Live live(ruleSet(
        R"([{"name": "db", "units": ["db-*.service"], "exclude": ["db-test.service"],
             "notify": ["log"], "when": {"event": "crash"}}])"));
    live.feed(Unit("api.service").crash());
    live.feed(Unit("db-test.service").crash());
    CHECK(live.changes.empty());
    live.feed(Unit("db-main.service").crash());
    REQUIRE(live.changes.size() == 1);
    CHECK(live.changes[0].unit == "db-main.service");
    CHECK(live.evaluator().unitsTracked() == 3);
}

TEST_CASE("a bare unit name in a rule fires for its .service and for an emitted job") {
    Live live(ruleSet(
        R"([{"name": "payments", "units": ["payments"], "exclude": ["payments-canary"],
             "notify": ["log"], "when": {"event": "crash"}}])"));
    live.feed(Unit("payments.socket").crash());
    live.feed(Unit("payments-canary.service").crash());
    live.feed(Unit("payments-api.service").crash());
    CHECK(live.changes.empty());
    live.feed(Unit("payments.service").crash());
    live.feed(Unit("payments").crash());
    REQUIRE(live.changes.size() == 2);
    CHECK(live.changes[0].unit == "payments.service");
    CHECK(live.changes[1].unit == "payments");
}

TEST_CASE("an alert resolves when the unit has been up for resolve_when_up_for") {
    Live live(ruleSet(
        R"([{"name": "crashloop", "notify": ["log"], "resolve_when_up_for": "10m",
             "when": {"event": "crash", "count": 3, "within": "5m"}}])"));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(1 * SEC, 1 * SEC));
    REQUIRE(live.of(ChangeKind::Fire).size() == 1);
    CHECK_FALSE(live.evaluator().nextDeadline().has_value());  // down: no timer runs

    live.feed(u.start());
    const Usec started = u.now();
    CHECK(live.evaluator().nextDeadline() == started + 10 * MIN);
    live.advance(started + 10 * MIN - 1);
    CHECK(live.of(ChangeKind::Resolve).empty());
    live.advance(started + 10 * MIN);
    const auto resolved = live.of(ChangeKind::Resolve);
    REQUIRE(resolved.size() == 1);
    CHECK(resolved[0].at_usec == started + 10 * MIN);
    CHECK((resolved[0].reason == ResolveReason::UpFor));
    CHECK(live.evaluator().firing().empty());
    CHECK_FALSE(live.evaluator().nextDeadline().has_value());
}

TEST_CASE("a crash resets the resolve timer") {
    Live live(ruleSet(
        R"([{"name": "crashloop", "notify": ["log"], "resolve_when_up_for": "10m",
             "when": {"event": "crash", "count": 3, "within": "5m"}}])"));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(1 * SEC, 1 * SEC));
    live.feed(u.start());
    const Usec first_start = u.now();
    live.feed(u.wait(9 * MIN).crash());
    live.feed(u.fail());
    live.feed(u.wait(1 * SEC).restart());
    live.feed(u.start());
    const Usec second_start = u.now();
    live.advance(first_start + 10 * MIN);
    CHECK(live.of(ChangeKind::Resolve).empty());
    CHECK(live.evaluator().nextDeadline() == second_start + 10 * MIN);
    live.advance(second_start + 10 * MIN);
    REQUIRE(live.of(ChangeKind::Resolve).size() == 1);
    CHECK(live.of(ChangeKind::Resolve)[0].count == 4);
}

TEST_CASE("a firing alert repeats every repeat_every and stops repeating once resolved") {
    Live live(ruleSet(
        R"([{"name": "crashloop", "notify": ["log"], "repeat_every": "1h",
             "resolve_when_up_for": "10m",
             "when": {"event": "crash", "count": 3, "within": "5m"}}])"));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.crash());
    const Usec fired = u.now();
    live.advance(fired + 3 * 60 * MIN + 30 * MIN);
    const auto repeats = live.of(ChangeKind::Repeat);
    REQUIRE(repeats.size() == 3);
    CHECK(repeats[0].at_usec == fired + 60 * MIN);
    CHECK(repeats[2].at_usec == fired + 180 * MIN);
    CHECK(repeats[2].started_usec == fired);
    CHECK(live.evaluator().firing()[0].last_notified_usec == fired + 180 * MIN);

    live.feed(u.wait(4 * 60 * MIN).start());
    live.advance(u.now() + 24 * 60 * MIN);
    CHECK(live.of(ChangeKind::Repeat).size() == 4);  // the one at 4h, before the start
    CHECK(live.of(ChangeKind::Resolve).size() == 1);
    CHECK_FALSE(live.evaluator().nextDeadline().has_value());
}

TEST_CASE("an operator's clean stop resolves the alert once no restart follows") {
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(1 * SEC, 1 * SEC));
    live.feed(u.start());
    live.feed(u.wait(2 * SEC).operatorStop());
    const Usec stopped = u.now();
    CHECK(live.evaluator().nextDeadline() == stopped + 5 * SEC);
    live.advance(stopped + 5 * SEC);
    const auto resolved = live.of(ChangeKind::Resolve);
    REQUIRE(resolved.size() == 1);
    CHECK((resolved[0].reason == ResolveReason::OperatorStop));
    CHECK(resolved[0].at_usec == stopped + 5 * SEC);
}

TEST_CASE("an operator's stop during RestartSec resolves the alert") {
    // The run's end was stored when it crashed; the stop comes while the manager waits to
    // restart it (cancelled), so no start precedes it.
    Live live(ruleSet(CRASH_3_IN_5M));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(1 * SEC, 1 * SEC));
    live.feed(u.start());
    live.feed(u.wait(1 * SEC).crash());
    live.feed(u.fail());
    live.feed(u.wait(300 * MS).row(Event::Stop, "inactive", "dead", "exit-code"));
    const Usec stopped = u.now();
    live.advance(stopped + 5 * SEC);
    const auto resolved = live.of(ChangeKind::Resolve);
    REQUIRE(resolved.size() == 1);
    CHECK((resolved[0].reason == ResolveReason::OperatorStop));
}

// Ten crash cycles found at once by a reconcile at `found`, nobody having watched since
// `since` (nullopt: not known).
std::vector<Transition> reconciled(Unit& u, std::optional<Usec> since) {
    std::vector<Transition> rows;
    for (int i = 0; i < 10; ++i) {
        for (auto t : u.crashCycle(0, 0)) {
            t.source = core::Source::Reconcile;
            t.unwatched_since_usec = since;
            rows.push_back(t);
        }
    }
    return rows;
}

TEST_CASE("rows inferred at reconcile fire only when the time nobody watched fits the rule") {
    // They are stored with the time they were found; they happened at most as long before
    // as nobody watched. Yesterday's loop must not look like a loop now.
    SUBCASE("since when is not known") {
        Live live(defaultRules());
        Unit u;
        live.feed(reconciled(u, std::nullopt));
        CHECK(live.of(ChangeKind::Fire).empty());
    }
    SUBCASE("nobody watched for a day") {
        Live live(defaultRules());
        Unit u("api.service", T0 + 24 * 60 * MIN);
        live.feed(reconciled(u, T0));
        CHECK(live.of(ChangeKind::Fire).empty());
        // The same loop seen live fires after three live crashes.
        for (int i = 0; i < 3; ++i) live.feed(u.crashCycle(200 * MS, 800 * MS));
        CHECK(live.of(ChangeKind::Fire).size() == 1);
    }
    SUBCASE("nobody watched for 2 minutes: runs may have lasted that long") {
        Live live(defaultRules());
        Unit u("api.service", T0 + 2 * MIN);
        live.feed(reconciled(u, T0));
        CHECK(live.of(ChangeKind::Fire).empty());  // uptime_below 30s is not shown
    }
    SUBCASE("nobody watched for 5 seconds: the loop fired within them") {
        Live live(defaultRules());
        Unit u("api.service", T0 + 5 * SEC);
        live.feed(reconciled(u, T0));
        const auto fires = live.of(ChangeKind::Fire);
        REQUIRE(fires.size() == 1);
        CHECK(fires[0].rule == "crashloop");
    }
}

TEST_CASE("with report_counts a firing alert reports each further qualifying event") {
    rules::EvaluatorOptions options;
    options.report_counts = true;
    Live live(ruleSet(CRASH_3_IN_5M), options);
    Unit u;
    for (int i = 0; i < 13; ++i) live.feed(u.crashCycle(1 * SEC, 1 * SEC));
    REQUIRE(live.of(ChangeKind::Fire).size() == 1);
    const auto counts = live.of(ChangeKind::Count);
    REQUIRE(counts.size() == 10);
    CHECK(counts.back().count == 13);
    CHECK(live.evaluator().firing().at(0).count == 13);
    // Without it nothing but fire, repeat and resolve comes out.
    Live plain(ruleSet(CRASH_3_IN_5M));
    Unit v;
    for (int i = 0; i < 13; ++i) plain.feed(v.crashCycle(1 * SEC, 1 * SEC));
    CHECK(plain.of(ChangeKind::Count).empty());
}

TEST_CASE("a clean exit followed by an automatic restart is no operator stop") {
    Live live(ruleSet(
        R"([{"name": "respawn", "notify": ["log"],
             "when": {"event": "restart", "count": 3, "within": "5m"}}])"));
    Unit u;
    for (int i = 0; i < 3; ++i) live.feed(u.respawnCycle(300 * MS, 500 * MS));
    REQUIRE(live.of(ChangeKind::Fire).size() == 1);
    for (int i = 0; i < 10; ++i) live.feed(u.respawnCycle(300 * MS, 4 * SEC));
    live.feed(u.start());
    live.advance(u.now() + 1 * MIN);
    CHECK(live.of(ChangeKind::Resolve).empty());
    CHECK(live.evaluator().firing().size() == 1);
}

TEST_CASE("the default give-up rule fires at once") {
    Live live(defaultRules());
    Unit u;
    live.feed(u.crashCycle(1 * SEC, 100 * MS));
    live.feed(u.start());
    live.feed(u.wait(1 * SEC).crash());
    live.feed(u.fail());
    live.feed(u.giveUp());
    const auto fires = live.of(ChangeKind::Fire);
    REQUIRE(fires.size() == 1);
    CHECK(fires[0].rule == "give-up");
    CHECK((fires[0].severity == rules::Severity::Critical));
    CHECK(fires[0].at_usec == u.now());
}

TEST_CASE("the default rules fire on a service that crashes every second") {
    Live live(defaultRules());
    Unit u;
    for (int i = 0; i < 10; ++i) live.feed(u.crashCycle(200 * MS, 800 * MS));
    const auto fires = live.of(ChangeKind::Fire);
    REQUIRE(fires.size() == 1);
    CHECK(fires[0].rule == "crashloop");
    CHECK(fires[0].at_usec == T0 + 2 * SEC + 200 * MS);  // the third crash
}

TEST_CASE("the default rules fire on a service that exits 0 and is respawned forever") {
    Live live(defaultRules());
    Unit u;
    for (int i = 0; i < 50; ++i) live.feed(u.respawnCycle(300 * MS, 500 * MS));
    const auto fires = live.of(ChangeKind::Fire);
    REQUIRE(fires.size() == 1);
    CHECK(fires[0].rule == "respawn");
    CHECK(fires[0].at_usec == T0 + 5 * 800 * MS);  // the fifth restart
    CHECK(live.of(ChangeKind::Resolve).empty());
}

TEST_CASE("the default rules do not fire on five operator restarts in a minute") {
    Live live(defaultRules());
    Unit u;
    live.feed(u.start());
    for (int i = 0; i < 5; ++i) {
        live.feed(u.wait(12 * SEC).operatorStop());
        live.feed(u.wait(100 * MS).start());
    }
    live.advance(u.now() + 60 * MIN);
    CHECK(live.changes.empty());
}

TEST_CASE("the default rules do not fire on one crash followed by a healthy run") {
    Live live(defaultRules());
    Unit u;
    live.feed(u.start());
    live.feed(u.wait(2 * SEC).crash());
    live.feed(u.fail());
    live.feed(u.wait(100 * MS).restart());
    live.feed(u.start());
    live.advance(u.now() + 24 * 60 * MIN);
    CHECK(live.changes.empty());
}

TEST_CASE("the default rules do not fire on a deploy") {
    Live live(defaultRules());
    Unit u;
    live.feed(u.start());
    live.feed(u.wait(3 * 24 * 60 * MIN).operatorStop());
    live.feed(u.wait(2 * SEC).start());
    live.advance(u.now() + 24 * 60 * MIN);
    CHECK(live.changes.empty());
}

TEST_CASE("replay of stored history gives what live evaluation gave") {
    Unit a("a.service");
    Unit b("b.service", T0 + 150 * MS);
    std::vector<Transition> history;
    for (int i = 0; i < 6; ++i) {
        for (const auto& t : a.crashCycle(200 * MS, 800 * MS)) history.push_back(t);
        for (const auto& t : b.respawnCycle(300 * MS, 500 * MS)) history.push_back(t);
    }
    history.push_back(a.start());
    history.push_back(a.wait(1 * SEC).operatorStop());
    std::stable_sort(history.begin(), history.end(), [](const Transition& x, const Transition& y) {
        return x.ts_usec < y.ts_usec;
    });

    Live live(defaultRules());
    live.feed(history);
    const Usec until = history.back().ts_usec + 10 * SEC;
    live.advance(until);

    Evaluator replayed(defaultRules());
    const auto changes = replayed.replay(history, until);
    REQUIRE(changes.size() == live.changes.size());
    for (std::size_t i = 0; i < changes.size(); ++i) {
        CAPTURE(i);
        CHECK((changes[i].kind == live.changes[i].kind));
        CHECK(changes[i].rule == live.changes[i].rule);
        CHECK(changes[i].unit == live.changes[i].unit);
        CHECK(changes[i].at_usec == live.changes[i].at_usec);
        CHECK(changes[i].count == live.changes[i].count);
    }
    CHECK(live.of(ChangeKind::Fire, "crashloop").size() == 1);
    CHECK(live.of(ChangeKind::Resolve, "crashloop").size() == 1);  // the operator stopped it
    CHECK(live.of(ChangeKind::Fire, "respawn").size() == 1);
    CHECK(replayed.firing().size() == 1);
    CHECK(replayed.firing()[0].unit == "b.service");
}

TEST_CASE("a long crash loop keeps one alert and bounded work") {
    Live live(defaultRules());
    Unit u;
    for (int i = 0; i < 20000; ++i) live.feed(u.crashCycle(200 * MS, 800 * MS));
    CHECK(live.changes.size() == 1);
    CHECK(live.evaluator().firing()[0].count == 20000);
    CHECK_FALSE(live.evaluator().nextDeadline().has_value());
}
