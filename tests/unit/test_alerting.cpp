// The daemon's alerting with a temp database and hand-set times: silences, rebuild after a
// restart, and alert rows written with the transitions that caused them.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <string>

#include "alerting_fixtures.hpp"
#include "captured_stderr.hpp"
#include "daemon/alerting.hpp"
#include "rules/rules.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"

using namespace cerberus;

using test::crashloopRules;
using test::event;

namespace {

constexpr core::Usec T0 = 1'800'000'000 * core::USEC_PER_SEC;
constexpr core::Usec S = core::USEC_PER_SEC;

// Feeds a transition as the daemon does: the evaluator first, then the store.
void feed(daemon::Alerting& alerting, store::HistoryWriter& writer, core::Transition t) {
    alerting.observe(t);
    writer.add(std::move(t));
}

// Three crashes appended as `cerberus emit` does while no daemon runs.
void appendCrashLoop(store::Database& db) {
    std::vector<core::Transition> down;
    for (int i = 1; i <= 3; ++i)
        down.push_back(event("job.service", core::Event::Crash, T0 + i * S));
    store::appendUnevaluated(db, down);
}

store::StoredAlert onlyAlert(store::Database& db) {
    const auto alerts = store::queryAlerts(db, "");
    REQUIRE(alerts.size() == 1);
    return alerts.front();
}

}  // namespace

TEST_CASE("a silenced alert is recorded silenced and unsilenced when its silence ends") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::addSilence(db, {0, "web*", "", T0, T0 + 30 * S, "deploy"});
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");

    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "firing");
    CHECK(onlyAlert(db).silenced);
    REQUIRE(alerting.nextDeadline());
    CHECK(*alerting.nextDeadline() == T0 + 30 * S);

    alerting.tick(T0 + 29 * S);
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).silenced);

    alerting.tick(T0 + 30 * S);
    REQUIRE(writer.flush().ok());
    CHECK_FALSE(onlyAlert(db).silenced);
    CHECK(onlyAlert(db).state == "firing");
    CHECK_FALSE(alerting.nextDeadline());
}

TEST_CASE("a silence that cannot be read lets the alert through and says so once per read") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::addSilence(db, {0, "web*", "", T0, T0 + 30 * S, "deploy"});
    REQUIRE(sqlite3_exec(db.handle(), "ALTER TABLE silences RENAME TO hidden", nullptr, nullptr,
                         nullptr) == SQLITE_OK);
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");

    test::CapturedStderr err;
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "firing");
    CHECK_FALSE(onlyAlert(db).silenced);
    CHECK(store::loadPendingNotifications(db).value().size() == 1);  // told to "log"
    CHECK(err.count("no such table: silences") == 1);
    CHECK(err.count("; telling the alert") == 1);
    CHECK_FALSE(alerting.nextDeadline() == T0 + 30 * S);  // no silence's end to wait for
}

TEST_CASE("a silence of a bare name holds back NAME.service, as journalctl -u reads it") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::addSilence(db, {0, "web", "", T0, T0 + 30 * S, ""});
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).silenced);
}

TEST_CASE("a silence for another rule or other units does not hold an alert back") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::addSilence(db, {0, "web*", "other-rule", T0, T0 + 30 * S, ""});
    store::addSilence(db, {0, "db*", "", T0, T0 + 30 * S, ""});
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    CHECK_FALSE(onlyAlert(db).silenced);
}

TEST_CASE("an alert resolved while silenced is recorded and its silence forgotten") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    store::addSilence(db, {0, "*", "", T0, T0 + 3600 * S, ""});
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    feed(alerting, writer, event("web.service", core::Event::Start, T0 + 4 * S));
    alerting.tick(T0 + 14 * S);  // up for the 10 s the rule asks
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "resolved");
    CHECK(*onlyAlert(db).resolved_usec == T0 + 14 * S);
    CHECK_FALSE(alerting.nextDeadline());
}

TEST_CASE("after a restart the windows are rebuilt and a firing alert is not fired again") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    {
        store::HistoryWriter writer(db);
        daemon::Alerting alerting(crashloopRules(), db, writer, "host");
        for (int i = 1; i <= 3; ++i)
            feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
        REQUIRE(writer.flush().ok());
    }
    store::HistoryWriter writer(db);
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    REQUIRE(alerting.rebuild(T0 + 5 * S).ok());
    CHECK(alerting.firing() == 1);
    feed(alerting, writer, event("web.service", core::Event::Crash, T0 + 6 * S));
    REQUIRE(writer.flush().ok());
    CHECK(store::queryAlerts(db, "").size() == 1);
    // What fell due while it was down is applied at rebuild: the unit came up and stayed.
    feed(alerting, writer, event("web.service", core::Event::Start, T0 + 7 * S));
    REQUIRE(writer.flush().ok());
    store::HistoryWriter writer2(db);
    daemon::Alerting restarted(crashloopRules(), db, writer2, "host");
    REQUIRE(restarted.rebuild(T0 + 60 * S).ok());
    REQUIRE(writer2.flush().ok());
    CHECK(onlyAlert(db).state == "resolved");
}

TEST_CASE("rows appended while no daemon ran fire their alert at start, and only once") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    appendCrashLoop(db);
    {
        store::HistoryWriter writer(db);
        daemon::Alerting alerting(crashloopRules(), db, writer, "host");
        alerting.start(T0 + 5 * S);
        REQUIRE(writer.flush().ok());
        CHECK(onlyAlert(db).state == "firing");
        CHECK(store::loadUnevaluated(db).empty());
        // The alert is told: its outbox row is pending.
        CHECK(store::loadPendingNotifications(db).value().size() == 1);
    }
    store::HistoryWriter writer(db);
    daemon::Alerting again(crashloopRules(), db, writer, "host");
    again.start(T0 + 6 * S);
    REQUIRE(writer.flush().ok());
    CHECK(again.firing() == 1);
    CHECK(store::queryAlerts(db, "").size() == 1);
    CHECK(store::loadPendingNotifications(db).value().size() == 1);
}

TEST_CASE("a start that cannot flush evaluates the appended rows again at the next start") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    appendCrashLoop(db);
    {
        store::HistoryWriter writer(db);
        daemon::Alerting alerting(crashloopRules(), db, writer, "host");
        alerting.start(T0 + 5 * S);  // crashes before its flush: nothing recorded
    }
    CHECK(store::loadUnevaluated(db).size() == 3);
    store::HistoryWriter writer(db);
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    alerting.start(T0 + 6 * S);
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "firing");
    CHECK(store::loadUnevaluated(db).empty());
}

TEST_CASE("a rule added by a reload fires and tells for a unit already looping") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    auto none =
        rules::parseRules(R"({"receivers": {"log": {"type": "log"}}, "rules": []})", "empty.json");
    REQUIRE(none.ok());
    daemon::Alerting alerting(none.rules, db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    CHECK(store::queryAlerts(db, "").empty());
    REQUIRE(alerting.reload(crashloopRules(), T0 + 4 * S).ok());
    REQUIRE(writer.flush().ok());
    const auto alert = onlyAlert(db);
    CHECK(alert.state == "firing");
    CHECK(alert.rule == "crashloop");
    CHECK(alert.started_usec == T0 + 3 * S);  // when the rule would have fired
    CHECK(store::loadPendingNotifications(db).value().size() == 1);
    // Reloaded again with the same rules: recorded, so nothing is told twice.
    REQUIRE(alerting.reload(crashloopRules(), T0 + 5 * S).ok());
    REQUIRE(writer.flush().ok());
    CHECK(store::queryAlerts(db, "").size() == 1);
    CHECK(store::loadPendingNotifications(db).value().size() == 1);
}

namespace {

// An empty rule set: what a reload would put in force instead of the crash-loop rule.
rules::RuleSet noRules() {
    auto none =
        rules::parseRules(R"({"receivers": {"log": {"type": "log"}}, "rules": []})", "empty.json");
    REQUIRE(none.ok());
    return none.rules;
}

void hideTable(store::Database& db, const std::string& from, const std::string& to) {
    const std::string sql = "ALTER TABLE " + from + " RENAME TO " + to;
    REQUIRE(sqlite3_exec(db.handle(), sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
}

}  // namespace

TEST_CASE("an alert whose rule a reload removed is resolved, not left firing") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    REQUIRE(onlyAlert(db).state == "firing");
    REQUIRE(alerting.reload(noRules(), T0 + 4 * S).ok());
    REQUIRE(writer.flush().ok());
    const auto alert = onlyAlert(db);
    CHECK(alert.state == "resolved");
    CHECK(alert.resolved_usec == T0 + 4 * S);
    CHECK(alerting.firing() == 0);
}

TEST_CASE("a reload whose history cannot be read is refused and the rules in force stay") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    for (int i = 1; i <= 3; ++i)
        feed(alerting, writer, event("web.service", core::Event::Crash, T0 + i * S));
    REQUIRE(writer.flush().ok());
    REQUIRE(onlyAlert(db).state == "firing");

    // Either read of the replay: the history, then the alerts recorded as firing.
    for (const std::string table : {"transitions", "alerts"}) {
        CAPTURE(table);
        hideTable(db, table, "hidden");
        const auto reloaded = alerting.reload(noRules(), T0 + 4 * S);
        REQUIRE_FALSE(reloaded.ok());
        CHECK(reloaded.error().find("database '" + tmp.file("history.db") + "'") !=
              std::string::npos);
        CHECK(reloaded.error().find("no such table: " + table) != std::string::npos);
        // Nothing changed: the old rule and its windows, nothing queued to resolve.
        CHECK(alerting.ruleCount() == 1);
        CHECK(alerting.firing() == 1);
        CHECK(writer.pending() == 0);
        hideTable(db, "hidden", table);
    }
    // The windows in force still count: a fourth crash of the loop is counted, not fired anew.
    feed(alerting, writer, event("web.service", core::Event::Crash, T0 + 5 * S));
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "firing");
    CHECK(onlyAlert(db).count == 4);
    // Once the history can be read, the same reload is taken.
    REQUIRE(alerting.reload(noRules(), T0 + 6 * S).ok());
    REQUIRE(writer.flush().ok());
    CHECK(onlyAlert(db).state == "resolved");
    CHECK(alerting.ruleCount() == 0);
}

TEST_CASE("a start whose history cannot be read stops with the database's sentence") {
    test::TempDir tmp;
    auto db = store::Database::open(tmp.file("history.db"), store::OpenMode::ReadWrite);
    store::HistoryWriter writer(db);
    hideTable(db, "transitions", "hidden");
    daemon::Alerting alerting(crashloopRules(), db, writer, "host");
    try {
        alerting.start(T0);
        FAIL("start did not throw");
    } catch (const core::Error& e) {
        CHECK(e.code() == core::ExitCode::Database);
        CHECK(std::string(e.what()).find("no such table: transitions") != std::string::npos);
    }
}
