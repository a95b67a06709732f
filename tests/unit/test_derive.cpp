#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ingest/derive.hpp"

using cerberus::core::Event;
using cerberus::core::Source;
using cerberus::core::Transition;
using cerberus::core::UnitSnapshot;
using cerberus::core::Usec;
using cerberus::ingest::apply;
using cerberus::ingest::derive;
using cerberus::ingest::isStale;
using cerberus::ingest::JournalEnd;
using cerberus::ingest::JournalEnds;
using cerberus::ingest::PropertyDelta;
using cerberus::ingest::Stamp;

namespace {

// One Unit-interface signal.
PropertyDelta unitSignal(const std::string& active, const std::string& sub, Usec mono,
                         const std::string& invocation = {}) {
    PropertyDelta d;
    d.active_state = active;
    d.sub_state = sub;
    d.state_change_mono = mono;
    if (!invocation.empty()) d.invocation_id = invocation;
    return d;
}

// One Service-interface signal of a unit whose main process has not run (or was reset).
PropertyDelta serviceSignal(const std::string& result, std::int64_t n_restarts) {
    PropertyDelta d;
    d.result = result;
    d.exec_main_code = 0;
    d.exec_main_status = 0;
    d.exec_main_start_mono = 0;
    d.exec_main_exit_mono = 0;
    d.n_restarts = n_restarts;
    d.main_pid = 0;
    return d;
}

UnitSnapshot serviceSnapshot(const std::string& active, const std::string& sub,
                             const std::string& result, std::int64_t n_restarts,
                             Usec exec_main_start_mono, const std::string& invocation) {
    UnitSnapshot s;
    s.unit = "app.service";
    s.active_state = active;
    s.sub_state = sub;
    s.result = result;
    s.n_restarts = n_restarts;
    s.exec_main_start_mono = exec_main_start_mono;
    s.state_change_mono = exec_main_start_mono;
    s.invocation_id = invocation;
    return s;
}

// A Restart=always service under systemd 252, sending what a real user manager sent when
// we watched it with dbus-monitor: every change is one PropertiesChanged for the Service
// interface (all its properties) and then one for the Unit interface; job changes resend
// both unchanged; a start zeroes ExecMain* and shows the new process and InvocationID while
// the unit still reads inactive/dead (or failed/failed, when started by hand from there).
class FakeService {
public:
    explicit FakeService(std::string unit) { s_.unit = std::move(unit); }

    // What GetAll returns now: both interfaces at once.
    PropertyDelta getAll() const {
        PropertyDelta d = serviceProps();
        const PropertyDelta u = unitProps();
        d.active_state = u.active_state;
        d.sub_state = u.sub_state;
        d.state_change_mono = u.state_change_mono;
        d.invocation_id = u.invocation_id;
        return d;
    }

    // Under load systemd merges: nothing is sent until flush(), which sends the last state.
    void hold() { holding_ = true; }
    void flush() {
        holding_ = false;
        send();
    }

    std::vector<PropertyDelta> take() { return std::exchange(signals_, {}); }

    // systemctl start (also after a give-up, from failed): NRestarts flushed to 0.
    void startByHand() {
        job();
        s_.n_restarts = 0;
        spawn();
        setState("active", "running");
        job();
    }
    // The main process ends. With Restart=always the manager then waits RestartSec.
    void exit(int code, int status, const std::string& result, bool restart = true) {
        s_.main_pid = 0;
        s_.exec_main_exit_mono = tick();
        s_.exec_main_code = code;
        s_.exec_main_status = status;
        if (s_.result == "success") s_.result = result;
        ++run_ends_;
        if (s_.result == "success")
            setState("inactive", "dead");
        else
            setState("failed", "failed");
        if (restart) setState("activating", "auto-restart");
    }
    void crash(int status = 3) { exit(1, status, "exit-code"); }
    // RestartSec passed: NRestarts+1 (JobNew), then the restart job stops (dead, not sent on
    // its own) and starts a new run.
    void autoRestart() {
        restartCounted();
        s_.active_state = "inactive";
        s_.sub_state = "dead";
        s_.state_change_mono = tick();
        spawn();
        setState("active", "running");
        job();
    }
    // RestartSec passed and the restart is counted (JobNew); its run is not spawned yet.
    void restartPending() { restartCounted(); }
    // RestartSec passed but the start limit refuses the start: systemd 252 keeps a failed
    // Result, so start-limit-hit shows only after a successful run.
    void refusedRestart() {
        restartCounted();
        refusePending();
    }
    // The counted restart's start is refused by the start limit.
    void refusePending() {
        if (s_.result == "success") s_.result = "start-limit-hit";
        setState("inactive", "dead");
        setState("failed", "failed");
        job();
    }
    void stopByHand() {
        job();
        setState("deactivating", "stop-sigterm");
        s_.main_pid = 0;
        s_.exec_main_exit_mono = tick();
        s_.exec_main_code = 2;
        s_.exec_main_status = 15;
        ++run_ends_;
        setState("inactive", "dead");
        job();
    }
    // systemctl stop while the manager waits to restart: the restart is cancelled.
    void cancelRestart() {
        job();
        setState("inactive", "dead");
        job();
    }
    void restartByHand() {
        job();
        setState("deactivating", "stop-sigterm");
        s_.main_pid = 0;
        s_.exec_main_exit_mono = tick();
        s_.exec_main_code = 2;
        s_.exec_main_status = 15;
        ++run_ends_;
        setState("inactive", "dead");
        s_.n_restarts = 0;
        spawn();
        setState("active", "running");
        job();
    }

    // systemctl reset-failed: NRestarts and Result go back to their start values. On a
    // running unit systemd 252 sends nothing until the next change.
    void resetFailed() {
        s_.n_restarts = 0;
        s_.result = "success";
        if (s_.active_state == "failed") setState("inactive", "dead");
    }

    int automaticRestarts() const { return restarts_; }
    int runEnds() const { return run_ends_; }
    std::int64_t nRestarts() const { return s_.n_restarts; }
    bool isUp() const { return s_.active_state == "active"; }

private:
    PropertyDelta serviceProps() const {
        PropertyDelta d;
        d.result = s_.result;
        d.exec_main_code = s_.exec_main_code;
        d.exec_main_status = s_.exec_main_status;
        d.exec_main_start_mono = s_.exec_main_start_mono;
        d.exec_main_exit_mono = s_.exec_main_exit_mono;
        d.n_restarts = s_.n_restarts;
        d.main_pid = s_.main_pid;
        return d;
    }
    PropertyDelta unitProps() const {
        PropertyDelta d;
        d.active_state = s_.active_state;
        d.sub_state = s_.sub_state;
        d.state_change_mono = s_.state_change_mono;
        d.invocation_id = s_.invocation_id;
        return d;
    }
    void send() {
        if (holding_) return;
        signals_.push_back(serviceProps());
        signals_.push_back(unitProps());
    }
    Usec tick() { return mono_ += 1000; }

public:
    // Time passes without a change (RestartSec).
    void wait(Usec usec) { mono_ += usec; }

private:
    void setState(const char* active, const char* sub) {
        s_.active_state = active;
        s_.sub_state = sub;
        s_.state_change_mono = tick();
        send();
    }
    void job() { send(); }
    void restartCounted() {
        ++s_.n_restarts;
        ++restarts_;
        send();
        job();
    }
    void spawn() {
        s_.result = "success";
        s_.exec_main_code = 0;
        s_.exec_main_status = 0;
        s_.exec_main_exit_mono = 0;
        s_.exec_main_start_mono = tick();
        s_.main_pid = next_pid_++;
        s_.invocation_id = "inv" + std::to_string(next_invocation_++);
        send();  // still in the old state: inactive/dead, or failed/failed after a failure
    }

    UnitSnapshot s_ = serviceSnapshot("inactive", "dead", "success", 0, 0, "");
    Usec mono_ = 1000000;
    std::int64_t next_pid_ = 1000;
    int next_invocation_ = 1;
    bool holding_ = false;
    std::vector<PropertyDelta> signals_;
    int restarts_ = 0;
    int run_ends_ = 0;
};

// What the systemd source does with each signal: drop stale ones, apply, derive.
struct Ingest {
    UnitSnapshot known;
    std::vector<Transition> rows;
    Stamp stamp;

    explicit Ingest(const std::string& unit) { known.unit = unit; }

    void feed(const std::vector<PropertyDelta>& signals) {
        for (const auto& d : signals) {
            if (isStale(known, d)) continue;
            UnitSnapshot next = known;
            apply(next, d);
            auto out = derive(known, next, stamp);
            rows.insert(rows.end(), out.begin(), out.end());
            known = std::move(next);
        }
    }
    void feed(FakeService& svc) { feed(svc.take()); }

    std::vector<Transition> of(Event e) const {
        std::vector<Transition> r;
        std::copy_if(rows.begin(), rows.end(), std::back_inserter(r),
                     [e](const Transition& t) { return t.event == e; });
        return r;
    }
    std::size_t count(Event e) const { return of(e).size(); }
    std::size_t runEnds() const { return count(Event::Crash) + count(Event::Stop); }
    std::vector<std::int64_t> restartNumbers() const {
        std::vector<std::int64_t> n;
        for (const auto& t : of(Event::Restart)) n.push_back(t.n_restarts.value_or(-1));
        return n;
    }
    std::string events() const {
        std::string s;
        for (const auto& t : rows) {
            if (!s.empty()) s += ' ';
            s += std::string(cerberus::core::toString(t.event));
        }
        return s;
    }
};

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> r;
    for (std::int64_t i = from; i <= to; ++i) r.push_back(i);
    return r;
}

// What the tests count in one derive() result.
struct EventCounts {
    int crashes = 0;
    int give_ups = 0;
    std::vector<std::int64_t> restarts;  // each restart row's n_restarts, in order
};

EventCounts countEvents(const std::vector<Transition>& rows) {
    EventCounts counts;
    for (const auto& t : rows) {
        if (t.event == Event::Crash) ++counts.crashes;
        if (t.event == Event::GiveUp) ++counts.give_ups;
        if (t.event == Event::Restart) counts.restarts.push_back(t.n_restarts.value_or(-1));
    }
    return counts;
}

// No (event, invocation, n_restarts, exit) row twice: each real transition is stored once.
void checkNoDuplicates(const Ingest& in) {
    std::set<std::tuple<Event, std::string, std::int64_t, std::string, int>> seen;
    for (const auto& t : in.rows) {
        if (t.invocation_id.empty()) continue;  // inferred rows name no invocation
        const auto key = std::make_tuple(t.event, t.invocation_id, t.n_restarts.value_or(-1),
                                         t.exit_code, t.exit_status.value_or(-1));
        CHECK_MESSAGE(seen.insert(key).second, "duplicate row: ", in.events());
    }
}

// A unit that cerberus first saw running, before any of the scenario happened.
// A service seen running as `run` (pid 10) after `n_restarts` restarts.
UnitSnapshot seenRunning(std::int64_t n_restarts, const std::string& run) {
    UnitSnapshot s = serviceSnapshot("active", "running", "success", n_restarts, 100, run);
    s.main_pid = 10;
    return s;
}

// `seen`, read again running another process (`run`, pid 40) at NRestarts `n_restarts`:
// whatever happened between the two readings went unseen.
UnitSnapshot runningAgain(const UnitSnapshot& seen, std::int64_t n_restarts,
                          const std::string& run) {
    UnitSnapshot s = seen;
    s.exec_main_start_mono = 900;
    s.state_change_mono = 900;
    s.n_restarts = n_restarts;
    s.invocation_id = run;
    s.main_pid = 40;
    return s;
}

FakeService runningService(Ingest& in, const std::string& unit = "app.service") {
    FakeService svc(unit);
    svc.startByHand();
    svc.take();
    in.feed({svc.getAll()});
    return svc;
}

}  // namespace

TEST_CASE("the first sighting of a unit is a baseline and stores nothing") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    CHECK(in.rows.empty());

    // Even a unit first seen failed, after restarts, stores nothing until it changes.
    Ingest late("app.service");
    svc.crash();
    svc.autoRestart();
    svc.crash();
    svc.take();
    late.feed({svc.getAll()});
    CHECK(late.rows.empty());
}

TEST_CASE("a crash loop of exit 3 stores one crash and one restart per cycle") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    constexpr int N = 5;
    for (int i = 0; i < N; ++i) {
        svc.crash(3);
        svc.autoRestart();
        in.feed(svc);
    }
    CAPTURE(in.events());
    const auto crashes = in.of(Event::Crash);
    REQUIRE(crashes.size() == N);
    for (const auto& c : crashes) {
        CHECK(c.exit_code == "exited");
        CHECK(c.exit_status == 3);
        CHECK(c.result == "exit-code");
        CHECK(c.active_state == "failed");
        CHECK_FALSE(c.invocation_id.empty());
    }
    CHECK(in.restartNumbers() == range(1, N));
    CHECK(in.count(Event::Start) == N);
    CHECK(in.count(Event::Fail) == N);
    CHECK(in.count(Event::Stop) == 0);
    CHECK(in.count(Event::GiveUp) == 0);
    checkNoDuplicates(in);
    // Each cycle in the order it happened.
    CHECK(in.events().rfind("crash fail restart start crash fail restart start", 0) == 0);
}

TEST_CASE("a crash row names the invocation of the run that crashed") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    const std::string running = in.known.invocation_id;
    svc.crash();
    in.feed(svc);
    REQUIRE(in.count(Event::Crash) == 1);
    CHECK(in.of(Event::Crash)[0].invocation_id == running);
}

TEST_CASE("a respawn loop of exit 0 stores stops and restarts, never a crash") {
    Ingest in("worker.service");
    FakeService svc = runningService(in, "worker.service");
    constexpr int N = 4;
    for (int i = 0; i < N; ++i) {
        svc.exit(1, 0, "success");
        svc.autoRestart();
        in.feed(svc);
    }
    CAPTURE(in.events());
    CHECK(in.count(Event::Crash) == 0);
    CHECK(in.count(Event::Fail) == 0);
    const auto stops = in.of(Event::Stop);
    REQUIRE(stops.size() == N);
    for (const auto& s : stops) {
        CHECK(s.exit_code == "exited");
        CHECK(s.exit_status == 0);
    }
    CHECK(in.restartNumbers() == range(1, N));
    CHECK(in.count(Event::Start) == N);
    checkNoDuplicates(in);
}

TEST_CASE("a manual start stores one start") {
    Ingest in("app.service");
    FakeService svc("app.service");
    in.feed({svc.getAll()});  // loaded, inactive
    svc.startByHand();
    in.feed(svc);
    CHECK(in.events() == "start");
    CHECK(in.rows[0].n_restarts == 0);
}

TEST_CASE("a unit passing through activating/start stores one start") {
    Ingest in("app.service");
    PropertyDelta loaded = unitSignal("inactive", "dead", 1, "a");
    loaded.n_restarts = 0;
    loaded.result = "success";
    PropertyDelta spawned;
    spawned.exec_main_start_mono = 3;
    spawned.main_pid = 42;
    in.feed({loaded});
    in.feed(
        {unitSignal("activating", "start", 2, "b"), spawned, unitSignal("active", "running", 4)});
    CHECK(in.events() == "start");
}

TEST_CASE("a manual stop stores one stop with the signal that ended the process") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.stopByHand();
    in.feed(svc);
    CHECK(in.events() == "stop");
    CHECK(in.rows[0].result == "success");
    CHECK(in.rows[0].exit_code == "killed");
    CHECK(in.rows[0].exit_status == 15);
    CHECK(in.rows[0].active_state == "inactive");
}

TEST_CASE("a manual restart stores a stop and a start but no restart") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.restartByHand();
    in.feed(svc);
    CHECK(in.events() == "stop start");
}

TEST_CASE("a manual restart resets NRestarts: the lower value is a new baseline") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    for (int i = 0; i < 3; ++i) {
        svc.crash();
        svc.autoRestart();
    }
    svc.restartByHand();  // NRestarts 3 -> 0
    svc.crash();
    svc.autoRestart();  // NRestarts 0 -> 1
    svc.crash();
    svc.autoRestart();  // 1 -> 2
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.restartNumbers() == std::vector<std::int64_t>{1, 2, 3, 1, 2});
    CHECK(in.count(Event::Restart) == static_cast<std::size_t>(svc.automaticRestarts()));
    CHECK(in.count(Event::Crash) == 5);
    CHECK(in.count(Event::Stop) == 1);
    checkNoDuplicates(in);
}

TEST_CASE("reset-failed under a running process is no stale signal and no restart") {
    // Recorded from systemd 252: reset-failed while the 3rd run was up; NRestarts 2 -> 0
    // first shows in the crash's Service signal, with the same ExecMainStartTimestamp.
    Ingest in("giveup.service");
    auto service = [](std::int64_t pid, const char* result, std::int64_t n, Usec start, Usec exit,
                      int code, int status) {
        PropertyDelta d;
        d.main_pid = pid;
        d.result = result;
        d.n_restarts = n;
        d.exec_main_start_mono = start;
        d.exec_main_exit_mono = exit;
        d.exec_main_code = code;
        d.exec_main_status = status;
        return d;
    };
    const std::string inv = "bc8d2484c90847ec8d47eb1016cc0a11";
    const std::string next = "b0ea1fc8131b4f829eecc85b387622a1";
    PropertyDelta all = service(6298, "success", 2, 1743202371, 0, 0, 0);
    const PropertyDelta running = unitSignal("active", "running", 1743212471, inv);
    apply(in.known, all);
    in.feed({running});  // first sighting: the baseline
    REQUIRE(in.rows.empty());
    in.feed({service(0, "exit-code", 0, 1743202371, 1743222988, 1, 1),
             unitSignal("failed", "failed", 1743223279, inv),
             service(0, "exit-code", 0, 1743202371, 1743222988, 1, 1),
             unitSignal("activating", "auto-restart", 1743224413, inv),
             service(0, "exit-code", 1, 1743202371, 1743222988, 1, 1),
             unitSignal("activating", "auto-restart", 1743224413, inv),
             service(0, "exit-code", 1, 1743202371, 1743222988, 1, 1),
             unitSignal("activating", "auto-restart", 1743224413, inv),
             service(6318, "success", 1, 1743453500, 0, 0, 0),
             unitSignal("inactive", "dead", 1743441734, next),
             service(6318, "success", 1, 1743453500, 0, 0, 0),
             unitSignal("active", "running", 1743455755, next)});
    CAPTURE(in.events());
    CHECK(in.events() == "crash fail restart start");
    CHECK(in.rows[0].exit_code == "exited");
    CHECK(in.rows[0].exit_status == 1);
    CHECK(in.rows[2].n_restarts == 1);
}

TEST_CASE("reset-failed on a failed unit stores nothing and a later loop counts from 1") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.exit(1, 3, "exit-code", false);  // Restart=no: it rests in failed
    svc.resetFailed();
    svc.startByHand();
    svc.crash();
    svc.autoRestart();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.events() == "crash fail start crash fail restart start");
    CHECK(in.restartNumbers() == std::vector<std::int64_t>{1});
}

TEST_CASE("a process killed by signal 9 is a crash") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.exit(2, 9, "signal");
    svc.autoRestart();
    in.feed(svc);
    CAPTURE(in.events());
    const auto crashes = in.of(Event::Crash);
    REQUIRE(crashes.size() == 1);
    CHECK(crashes[0].exit_code == "killed");
    CHECK(crashes[0].exit_status == 9);
    CHECK(crashes[0].result == "signal");
    CHECK(in.restartNumbers() == std::vector<std::int64_t>{1});
}

TEST_CASE("a core dump and a watchdog kill are crashes too") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.exit(3, 11, "core-dump");
    svc.autoRestart();
    svc.exit(2, 6, "watchdog");
    svc.autoRestart();
    in.feed(svc);
    const auto crashes = in.of(Event::Crash);
    REQUIRE(crashes.size() == 2);
    CHECK(crashes[0].exit_code == "dumped");
    CHECK(crashes[0].result == "core-dump");
    CHECK(crashes[1].result == "watchdog");
}

TEST_CASE("a give-up as systemd 252 shows it after failed runs is one give_up") {
    // Start limit 5 in 10 s: the 5th restart is refused. NRestarts 4 -> 5, inactive/dead,
    // failed/failed with Result=exit-code, and no new run end.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    for (int i = 0; i < 4; ++i) {
        svc.crash(1);
        svc.autoRestart();
    }
    svc.crash(1);
    in.feed(svc);
    const std::size_t crashes = in.count(Event::Crash);
    svc.refusedRestart();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.count(Event::Crash) == crashes);  // the refused start is no run
    CHECK(in.count(Event::GiveUp) == 1);
    CHECK(in.count(Event::Crash) == static_cast<std::size_t>(svc.runEnds()));
    CHECK(in.restartNumbers() == range(1, 5));
    const auto give_up = in.of(Event::GiveUp)[0];
    CHECK(give_up.result == "exit-code");
    CHECK(give_up.active_state == "failed");
    CHECK((in.rows.back().event == Event::GiveUp));
    checkNoDuplicates(in);
}

TEST_CASE("a give-up after successful runs shows start-limit-hit and is one give_up") {
    Ingest in("worker.service");
    FakeService svc = runningService(in, "worker.service");
    for (int i = 0; i < 4; ++i) {
        svc.exit(1, 0, "success");
        svc.autoRestart();
    }
    svc.exit(1, 0, "success");
    svc.refusedRestart();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.count(Event::GiveUp) == 1);
    CHECK(in.of(Event::GiveUp)[0].result == "start-limit-hit");
    CHECK(in.count(Event::Crash) == 0);
    CHECK(in.count(Event::Stop) == 5);
    CHECK(in.count(Event::Fail) == 1);
    CHECK(in.restartNumbers() == range(1, 5));
}

TEST_CASE("a unit given up and started again can give up again") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 4; ++i) {
            svc.crash(1);
            svc.autoRestart();
        }
        svc.crash(1);
        svc.refusedRestart();
        if (round == 0) svc.startByHand();  // from failed; NRestarts 5 -> 0
    }
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.count(Event::GiveUp) == 2);
    CHECK(in.restartNumbers() == std::vector<std::int64_t>{1, 2, 3, 4, 5, 1, 2, 3, 4, 5});
    CHECK(in.count(Event::Crash) == static_cast<std::size_t>(svc.runEnds()));
}

TEST_CASE("a restart cancelled by an operator is a stop: no restart and no give_up") {
    // `systemctl stop` between two crashes: the operator ended the loop, and the stop row
    // is what resolves its alert.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    svc.cancelRestart();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.events() == "crash fail stop");
    CHECK(in.of(Event::Stop).at(0).sub_state == "dead");
}

TEST_CASE("a give-up is no operator's stop, even with its signals split") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    for (int i = 0; i < 3; ++i) {
        svc.crash();
        svc.refusedRestart();
        in.feed(svc);
        svc.startByHand();
        in.feed(svc);
    }
    CAPTURE(in.events());
    CHECK(in.count(Event::GiveUp) == 3);
    CHECK(in.count(Event::Stop) == 0);
}

TEST_CASE("an ExecStartPre= that fails on every restart is no give_up") {
    // As systemd 252 sent it: each restart gets a new InvocationID, ExecMain* stay zero (no
    // main process ran) and the unit goes failed, then auto-restart.
    Ingest in("pre.service");
    Usec mono = 10;
    auto unit = [&mono](const char* active, const char* sub, const std::string& inv) {
        return unitSignal(active, sub, ++mono, inv);
    };
    in.feed({serviceSignal("success", 0), unit("inactive", "dead", "i0")});
    for (int n = 1; n <= 3; ++n) {
        const std::string inv = "i" + std::to_string(n);
        in.feed({serviceSignal("success", n - 1), unit("inactive", "dead", inv),
                 serviceSignal("success", n - 1), unit("activating", "start-pre", inv),
                 serviceSignal("exit-code", n - 1), unit("failed", "failed", inv),
                 serviceSignal("exit-code", n - 1), unit("activating", "auto-restart", inv),
                 serviceSignal("exit-code", n), unit("activating", "auto-restart", inv)});
    }
    CAPTURE(in.events());
    CHECK(in.count(Event::GiveUp) == 0);
    CHECK(in.count(Event::Fail) == 3);
    CHECK(in.restartNumbers() == range(1, 3));
}

TEST_CASE("cycles merged under load are rebuilt from NRestarts") {
    // systemd sends at most 100 change signals per loop iteration: three whole cycles
    // arrive as one Service signal and one Unit signal.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.hold();
    for (int i = 0; i < 3; ++i) {
        svc.crash();
        svc.autoRestart();
    }
    svc.flush();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.restartNumbers() == range(1, 3));
    // The failed states were never seen: the crashes are inferred, without exit facts.
    const auto crashes = in.of(Event::Crash);
    CHECK(crashes.size() == 3);
    for (const auto& c : crashes) CHECK(c.exit_code.empty());
    CHECK(in.count(Event::Start) == 1);
    CHECK(in.count(Event::Stop) == 0);
    CHECK(in.events() == "crash restart crash restart crash restart start");
}

TEST_CASE("a merge that ends inside a crash keeps the last crash's exit status") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.hold();
    for (int i = 0; i < 3; ++i) {
        svc.crash(7);
        svc.autoRestart();
    }
    svc.crash(7);
    svc.flush();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.restartNumbers() == range(1, 3));
    const auto crashes = in.of(Event::Crash);
    REQUIRE(crashes.size() == 4);
    CHECK(crashes.back().exit_code == "exited");
    CHECK(crashes.back().exit_status == 7);
    CHECK(in.count(Event::Crash) == static_cast<std::size_t>(svc.runEnds()));
}

TEST_CASE("merged respawns of a unit seen exiting 0 are stored as stops") {
    Ingest in("worker.service");
    FakeService svc = runningService(in, "worker.service");
    svc.exit(1, 0, "success");
    in.feed(svc);  // seen: the worker exits cleanly and waits to be restarted
    svc.hold();
    svc.autoRestart();
    for (int i = 0; i < 2; ++i) {
        svc.exit(1, 0, "success");
        svc.autoRestart();
    }
    svc.flush();
    in.feed(svc);
    CAPTURE(in.events());
    CHECK(in.count(Event::Crash) == 0);
    CHECK(in.count(Event::Stop) == 3);
    CHECK(in.restartNumbers() == range(1, 3));
}

TEST_CASE("a single snapshot jumping NRestarts by 3 stores 3 restarts and inferred crashes") {
    Ingest in("app.service");
    const UnitSnapshot before = seenRunning(2, "aaaa");
    UnitSnapshot after = runningAgain(before, 5, "dddd");
    const auto rows = derive(before, after, Stamp{});
    const auto counts = countEvents(rows);
    CHECK(counts.restarts == range(3, 5));
    CHECK(counts.crashes == 3);
    CHECK((rows.back().event == Event::Start));
    CHECK_FALSE(after.run_ended);
}

TEST_CASE("runs that ended unwatched are stored as the manager's journal tells") {
    // Seen running as aaaa after restart 2; read again at NRestarts 5: aaaa, bbbb and cccc
    // ended unseen. The journal says two exited cleanly and the last exited 3.
    const UnitSnapshot before = seenRunning(2, "aaaa");
    UnitSnapshot after = runningAgain(before, 5, "dddd");
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    UnitSnapshot guessed_after = after;
    const auto guessed = derive(before, guessed_after, reconcile);
    CHECK(countEvents(guessed).crashes == 3);  // nothing in view tells: the guess
    const JournalEnds journal{{3, JournalEnd{"aaaa", "success", "", std::nullopt}},
                              {4, JournalEnd{"bbbb", "success", "", std::nullopt}},
                              {5, JournalEnd{"cccc", "exit-code", "exited", 3}}};
    const auto rows = derive(before, after, reconcile, journal);
    REQUIRE(rows.size() == 7);
    CHECK((rows[0].event == Event::Stop));
    CHECK(rows[0].invocation_id == "aaaa");
    CHECK(rows[0].result == "success");
    CHECK(rows[1].n_restarts == 3);
    CHECK((rows[2].event == Event::Stop));
    CHECK(rows[2].invocation_id == "bbbb");
    CHECK((rows[4].event == Event::Crash));
    CHECK(rows[4].invocation_id == "cccc");
    CHECK(rows[4].result == "exit-code");
    CHECK(rows[4].exit_code == "exited");
    CHECK(rows[4].exit_status == 3);
    CHECK(rows[5].n_restarts == 5);
    CHECK((rows[6].event == Event::Start));
    CHECK(after == guessed_after);  // the journal changes the rows, not the bookkeeping
}

TEST_CASE("rows the journal told carry the times the manager logged them at") {
    const UnitSnapshot before = seenRunning(2, "aaaa");
    UnitSnapshot after = runningAgain(before, 4, "cccc");
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    reconcile.ts_usec = 50'000;
    reconcile.mono_usec = 5'000;
    reconcile.unwatched_since_usec = 10'000;
    // Wall and monotonic times as the journal has them: (ended, restarted) of each run.
    auto logged = [](const char* run, Usec ended, Usec restarted) {
        JournalEnd e{run, "exit-code", "exited", 3};
        e.ended_usec = ended;
        e.ended_mono = ended / 10;
        e.restarted_usec = restarted;
        e.restarted_mono = restarted / 10;
        return e;
    };
    JournalEnds journal{{3, logged("aaaa", 20'000, 20'200)}, {4, logged("bbbb", 30'000, 30'200)}};
    UnitSnapshot told_after = after;
    const auto rows = derive(before, told_after, reconcile, journal);
    REQUIRE(rows.size() == 5);  // crash, restart 3, crash, restart 4, start
    const std::vector<Usec> logged_at{20'000, 20'200, 30'000, 30'200};
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(rows[i].ts_usec == logged_at[i]);
        CHECK(rows[i].mono_usec == logged_at[i] / 10);
        CHECK(rows[i].unwatched_since_usec == 10'000);  // the rules weigh them as before
    }
    CHECK(rows[4].ts_usec == 50'000);  // found running at the reconcile
    // One restart the journal does not hold: no row is moved, so none goes out of order.
    journal.erase(4);
    UnitSnapshot partly_after = after;
    for (const auto& t : derive(before, partly_after, reconcile, journal)) {
        CHECK(t.ts_usec == 50'000);
        CHECK(t.mono_usec == 5'000);
    }
    // Nor a time from before cerberus last watched.
    journal = JournalEnds{{3, logged("aaaa", 9'000, 20'200)}, {4, logged("bbbb", 30'000, 30'200)}};
    UnitSnapshot early_after = after;
    CHECK(derive(before, early_after, reconcile, journal).front().ts_usec == 50'000);
}

TEST_CASE("a journal entry of another run does not explain the run cerberus saw") {
    // NRestarts was reset (a manual start) and counted again to 1 since aaaa was seen: the
    // journal's restart 1 followed another run, not aaaa.
    const UnitSnapshot before = seenRunning(4, "aaaa");
    UnitSnapshot after = runningAgain(before, 1, "cccc");
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const JournalEnds journal{{1, JournalEnd{"bbbb", "success", "", std::nullopt}}};
    const auto rows = derive(before, after, reconcile, journal);
    CAPTURE(rows.size());
    REQUIRE(rows.size() >= 3);
    CHECK(rows[0].invocation_id == "aaaa");
    CHECK(rows[0].result.empty());  // still a guess: the journal spoke of bbbb
    CHECK((rows[1].event == Event::Stop));
    CHECK(rows[1].invocation_id == "bbbb");
}

TEST_CASE("a crash merged into the next restart of a running loop is a crash") {
    // The unit runs again after a restart (Result reset to success); its last exit was 3.
    // The next crash and restart come merged (a reload, a busy manager): that unseen end
    // follows the last exit, not the running unit's Result.
    UnitSnapshot before = serviceSnapshot("active", "running", "success", 2, 100, "aaaa");
    before.main_pid = 10;
    before.exec_main_exit_mono = 90;
    before.reported_exit_mono = 90;
    before.exec_main_code = 1;
    before.exec_main_status = 3;
    UnitSnapshot after = before;
    after.exec_main_start_mono = 900;
    after.exec_main_exit_mono = 0;
    after.state_change_mono = 900;
    after.n_restarts = 3;
    after.invocation_id = "bbbb";
    after.main_pid = 40;
    const auto rows = derive(before, after, Stamp{});
    REQUIRE(rows.size() == 3);
    CHECK((rows[0].event == Event::Crash));
    CHECK((rows[1].event == Event::Restart));
    CHECK((rows[2].event == Event::Start));
    // A respawn loop's last exit 0 speaks for a clean end.
    before.exec_main_status = 0;
    after = before;
    after.exec_main_start_mono = 900;
    after.exec_main_exit_mono = 0;
    after.state_change_mono = 900;
    after.n_restarts = 3;
    after.invocation_id = "bbbb";
    CHECK((derive(before, after, Stamp{}).at(0).event == Event::Stop));
}

TEST_CASE("a restart counted before cerberus died, its run never seen, ends unseen") {
    // cerberus saw NRestarts become 9 (the restart job began) and was killed before the new
    // process spawned. The reconcile finds NRestarts 12: four runs ended, the first of them
    // the one restart 9 began.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    in.feed(svc);
    svc.autoRestart();
    auto signals = svc.take();
    // Only the Service signal with the counted restart got through.
    signals.resize(1);
    in.feed(signals);
    REQUIRE(in.restartNumbers() == range(1, 1));
    const UnitSnapshot before = in.known;
    CHECK(before.awaiting_end);
    for (int i = 0; i < 3; ++i) {
        svc.crash();
        svc.autoRestart();
    }
    svc.crash();
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const auto counts = countEvents(derive(before, after, reconcile));
    CHECK(counts.restarts == range(2, 4));
    CHECK(counts.crashes == 4);  // the run restart 1 began, two more, and the one ending now
    CHECK(counts.crashes == svc.runEnds() - 1);  // every run end but the one seen live
}

TEST_CASE("a give-up found at reconcile after an awaited restart counts its run once") {
    // Seen: restart 1 counted, its run not yet. Unseen: that run crashed and the next
    // restart was refused (start limit). One crash, not two.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    in.feed(svc);
    svc.autoRestart();
    auto signals = svc.take();
    signals.resize(1);
    in.feed(signals);
    const UnitSnapshot before = in.known;
    REQUIRE(before.awaiting_end);
    svc.crash();
    svc.wait(100'000);  // RestartSec
    svc.refusedRestart();
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const auto counts = countEvents(derive(before, after, reconcile));
    CHECK(counts.crashes == 1);
    CHECK(counts.give_ups == 1);
}

TEST_CASE("an awaited run that ended unseen before the next restart is told by the journal") {
    // Seen: restart 1 counted, its run (inv2) not yet. Unseen: inv2 crashed, restart 2 began
    // inv3, which crashed too and waits to be restarted. Alone, the state cannot tell this
    // from inv2 being the run in view with restart 2 refused; the journal says restart 2
    // followed inv2.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    in.feed(svc);
    svc.autoRestart();
    auto signals = svc.take();
    signals.resize(1);
    in.feed(signals);
    const UnitSnapshot before = in.known;
    REQUIRE(before.awaiting_end);
    svc.crash();
    svc.wait(100'000);
    svc.autoRestart();
    svc.crash();
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    REQUIRE(after.invocation_id == "inv3");
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    UnitSnapshot guessed_after = after;
    CHECK(countEvents(derive(before, guessed_after, reconcile)).crashes == 1);  // ambiguous
    const JournalEnds journal{{2, JournalEnd{"inv2", "exit-code", "exited", 3}}};
    const auto rows = derive(before, after, reconcile, journal);
    const auto counts = countEvents(rows);
    CHECK(counts.crashes == 2);
    CHECK(counts.restarts == range(2, 2));
    REQUIRE(rows.size() >= 3);
    CHECK(rows[0].invocation_id == "inv2");
    CHECK(rows[2].invocation_id == "inv3");
    // Restart 2 refused after inv2: the journal names the run in view, which is inv2's end.
    UnitSnapshot refused = after;
    refused.invocation_id = "inv2";
    const JournalEnds names_in_view{{2, JournalEnd{"inv2", "exit-code", "exited", 3}}};
    CHECK(countEvents(derive(before, refused, reconcile, names_in_view)).crashes == 1);
}

TEST_CASE("a restart systemd counted twice for one run end stores that end once") {
    // Seen: inv1 killed, restart 1 counted. A daemon-reload during RestartSec makes systemd
    // count the restart again (NRestarts 2) before one new run, inv2, starts; its journal
    // names inv1 before both. Without it, restart 2 would seem to follow an unseen run.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.exit(2, 9, "signal");
    in.feed(svc);
    svc.autoRestart();
    auto signals = svc.take();
    signals.resize(1);
    in.feed(signals);
    REQUIRE(in.count(Event::Crash) == 1);
    const UnitSnapshot before = in.known;
    REQUIRE(before.awaiting_end);
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    after.n_restarts = 2;
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const JournalEnds journal{{1, JournalEnd{"inv1", "signal", "killed", 9}},
                              {2, JournalEnd{"inv1", "signal", "killed", 9}}};
    const auto rows = derive(before, after, reconcile, journal);
    CAPTURE(rows.size());
    const auto counts = countEvents(rows);
    CHECK(counts.crashes == 0);  // inv1's crash was stored when it happened
    CHECK(counts.restarts == range(2, 2));
    CHECK(std::none_of(rows.begin(), rows.end(),
                       [](const Transition& t) { return t.event == Event::Stop; }));
}

TEST_CASE("the run in view that ended before a counted restart is stored once") {
    // Seen: inv1 running. Unseen: it crashed, restart 1 began inv2, inv2 crashed, and
    // restart 2 is counted but not spawned yet: the GetAll shows inv2's exit and NRestarts 2.
    // The journal names inv2 before restart 2; it is the run in view, not another one.
    Ingest in("app.service");
    FakeService svc = runningService(in);
    const UnitSnapshot before = in.known;
    svc.crash();
    svc.wait(100'000);
    svc.autoRestart();
    svc.crash();
    svc.wait(100'000);
    svc.restartPending();
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    REQUIRE(after.invocation_id == "inv2");
    REQUIRE(after.n_restarts == 2);
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const JournalEnds journal{{1, JournalEnd{"inv1", "exit-code", "exited", 3}},
                              {2, JournalEnd{"inv2", "exit-code", "exited", 3}}};
    const auto rows = derive(before, after, reconcile, journal);
    const auto counts = countEvents(rows);
    CAPTURE(rows.size());
    CHECK(counts.crashes == 2);
    CHECK(counts.restarts == range(1, 2));
    CHECK(after.awaiting_end);  // the run restart 2 begins is still to come
    CHECK(after.reported_exit_mono == after.exec_main_exit_mono);  // inv2's exit stored
    // Then, live, the start limit refuses restart 2: a give-up, not an operator's stop.
    Ingest live("app.service");
    live.known = after;
    svc.take();
    svc.refusePending();
    live.feed(svc);
    CAPTURE(live.events());
    CHECK(live.count(Event::GiveUp) == 1);
    CHECK(live.count(Event::Stop) == 0);
    CHECK(live.count(Event::Crash) == 0);
}

TEST_CASE("a run that began and ended unseen before the first restart is told by the journal") {
    // Seen: the unit stopped by hand (inv1), then its manual start reset NRestarts to 0 and
    // cerberus was killed before the new run's start came. Unseen: that run (inv2) crashed,
    // restart 1 began inv3, which runs. The counters alone show one restart and no end.
    UnitSnapshot before = serviceSnapshot("inactive", "dead", "success", 0, 100, "inv1");
    before.run_ended = true;
    UnitSnapshot after = serviceSnapshot("active", "running", "success", 1, 900, "inv3");
    after.main_pid = 40;
    after.state_change_mono = 900;
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    UnitSnapshot guessed_after = after;
    CHECK(countEvents(derive(before, guessed_after, reconcile)).crashes == 0);
    const JournalEnds journal{{1, JournalEnd{"inv2", "exit-code", "exited", 3}}};
    const auto rows = derive(before, after, reconcile, journal);
    const auto counts = countEvents(rows);
    CHECK(counts.crashes == 1);
    CHECK(counts.restarts == range(1, 1));
    REQUIRE_FALSE(rows.empty());
    CHECK(rows[0].invocation_id == "inv2");
    // The journal naming the run already ended adds nothing.
    const JournalEnds same{{1, JournalEnd{"inv1", "exit-code", "exited", 3}}};
    UnitSnapshot same_after = guessed_after;
    CHECK(countEvents(derive(before, same_after, reconcile, same)).crashes == 0);
}

TEST_CASE("a loop that gave up while cerberus was away stores each crash once and a give_up") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    in.feed(svc);  // seen: the crash, waiting to restart
    const UnitSnapshot before = in.known;
    for (int i = 0; i < 3; ++i) {
        svc.wait(100'000);
        svc.autoRestart();
        svc.crash();
    }
    svc.wait(100'000);
    svc.refusedRestart();
    UnitSnapshot after = before;
    apply(after, svc.getAll());
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    const auto counts = countEvents(derive(before, after, reconcile));
    CHECK(counts.restarts.size() == 4);  // three that ran and the refused one, as NRestarts counts
    CHECK(counts.crashes == 3);
    CHECK(counts.give_ups == 1);
    // Not a give-up: a loop found crashed and waiting to restart, as a GetAll shows it.
    Ingest live("other.service");
    FakeService loop = runningService(live);
    loop.crash();
    live.feed(loop);
    const UnitSnapshot seen = live.known;
    for (int i = 0; i < 3; ++i) {
        loop.wait(100'000);
        loop.autoRestart();
        loop.crash();
    }
    UnitSnapshot now = seen;
    apply(now, loop.getAll());
    const auto loop_counts = countEvents(derive(seen, now, reconcile));
    CHECK(loop_counts.crashes == 3);
    CHECK(loop_counts.give_ups == 0);
}

TEST_CASE("a delta older than the known snapshot is stale") {
    const UnitSnapshot known = serviceSnapshot("active", "running", "success", 4, 5000, "new");
    auto process = [](Usec start, std::int64_t n_restarts) {
        PropertyDelta d;
        d.exec_main_start_mono = start;
        d.n_restarts = n_restarts;
        return d;
    };
    // A Unit signal queued before the GetAll reply.
    CHECK(isStale(known, unitSignal("failed", "failed", 4000)));
    // A Service signal about an older process.
    CHECK(isStale(known, process(3000, 3)));
    // The same process cannot have fewer restarts.
    CHECK(isStale(known, process(5000, 3)));
    // Newer or equal ones are not.
    CHECK_FALSE(isStale(known, unitSignal("failed", "failed", 6000)));
    CHECK_FALSE(isStale(known, unitSignal("active", "running", 5000)));
    CHECK_FALSE(isStale(known, process(5000, 4)));
    CHECK_FALSE(isStale(known, process(7000, 0)));
}

TEST_CASE("a start that zeroes ExecMain* is not mistaken for a stale delta") {
    // An ExecStartPre= run: systemd 252 sends ExecMainStartTimestampMonotonic=0.
    UnitSnapshot known = serviceSnapshot("activating", "auto-restart", "exit-code", 1, 5000, "i");
    known.exec_main_exit_mono = 5100;
    CHECK_FALSE(isStale(known, serviceSignal("success", 1)));
}

TEST_CASE("signals queued before the GetAll reply are dropped, not replayed") {
    Ingest in("app.service");
    FakeService svc("app.service");
    svc.startByHand();
    svc.crash();
    svc.autoRestart();
    svc.crash();
    svc.autoRestart();
    const auto queued = svc.take();  // sent while cerberus waited for GetAll
    in.feed({svc.getAll()});
    in.feed(queued);
    CAPTURE(in.events());
    CHECK(in.rows.empty());
}

TEST_CASE("every signal delivered twice stores every transition once") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    for (int i = 0; i < 3; ++i) {
        svc.crash();
        svc.autoRestart();
    }
    std::vector<PropertyDelta> doubled;
    for (const auto& d : svc.take()) {
        doubled.push_back(d);
        doubled.push_back(d);
    }
    in.feed(doubled);
    CAPTURE(in.events());
    CHECK(in.count(Event::Crash) == 3);
    CHECK(in.restartNumbers() == range(1, 3));
    CHECK(in.count(Event::Start) == 3);
    CHECK(in.count(Event::Fail) == 3);
}

TEST_CASE("reconcile stores the restarts that happened while cerberus was away") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    svc.crash();
    svc.autoRestart();
    in.feed(svc);
    const UnitSnapshot persisted = in.known;  // what the units table held at shutdown
    REQUIRE(persisted.n_restarts == 1);

    for (int i = 0; i < 7; ++i) {  // cerberus not running
        svc.crash();
        svc.autoRestart();
    }
    svc.take();
    UnitSnapshot fresh = persisted;  // GetAll at start-up
    apply(fresh, svc.getAll());
    Stamp reconcile;
    reconcile.ts_usec = 77;
    reconcile.source = Source::Reconcile;
    const auto rows = derive(persisted, fresh, reconcile);

    for (const auto& t : rows) {
        CHECK((t.source == Source::Reconcile));
        CHECK(t.ts_usec == 77);
    }
    const auto counts = countEvents(rows);
    CHECK(counts.restarts == range(2, 8));
    CHECK(counts.crashes == 7);
    CHECK(fresh.n_restarts == 8);
}

TEST_CASE("reconcile after the unit was reloaded takes the lower NRestarts as a new baseline") {
    UnitSnapshot persisted = serviceSnapshot("inactive", "dead", "success", 9, 100, "old");
    persisted.exec_main_exit_mono = 200;
    persisted.state_change_mono = 200;
    persisted.reported_exit_mono = 200;
    persisted.run_ended = true;
    Stamp reconcile;
    reconcile.source = Source::Reconcile;
    UnitSnapshot fresh = persisted;
    fresh.n_restarts = 0;  // unloaded and loaded again; never negative restarts
    fresh.state_change_mono = 300;
    CHECK(derive(persisted, fresh, reconcile).empty());

    fresh.n_restarts = 2;  // started by hand, then restarted twice
    fresh.active_state = "active";
    fresh.sub_state = "running";
    fresh.exec_main_start_mono = 400;
    fresh.exec_main_exit_mono = 0;
    fresh.invocation_id = "new";
    std::vector<std::int64_t> restarts;
    for (const auto& t : derive(persisted, fresh, reconcile))
        if (t.event == Event::Restart) restarts.push_back(*t.n_restarts);
    CHECK(restarts == range(1, 2));
}

TEST_CASE("a non-service unit stores start, stop and fail from its states alone") {
    Ingest in("data.mount");
    auto unit = [](const char* active, const char* sub, Usec mono) {
        return unitSignal(active, sub, mono);
    };
    in.feed({unit("inactive", "dead", 1), unit("activating", "mounting", 2),
             unit("active", "mounted", 3), unit("deactivating", "unmounting", 4),
             unit("inactive", "dead", 5), unit("activating", "mounting", 6),
             unit("active", "mounted", 7), unit("failed", "failed", 8)});
    CHECK(in.events() == "start stop start crash fail");
    for (const auto& t : in.rows) CHECK_FALSE(t.n_restarts);
}

TEST_CASE(
    "over a long mixed history restarts equal NRestarts increases and run ends are stored once") {
    Ingest in("app.service");
    FakeService svc = runningService(in);
    std::uint32_t rng = 12345;
    auto next = [&rng](std::uint32_t n) {
        rng = rng * 1103515245u + 12345u;
        return (rng >> 16) % n;
    };
    for (int step = 0; step < 300; ++step) {
        const bool merge = next(5) == 0;
        if (merge) svc.hold();
        switch (next(7)) {
        case 0: svc.exit(1, 0, "success"); break;
        case 1: svc.exit(2, 9, "signal"); break;
        case 2: svc.restartByHand(); break;
        case 3:
            svc.stopByHand();
            if (next(2) == 0) svc.resetFailed();
            svc.startByHand();
            break;
        default: svc.crash(3); break;
        }
        if (!svc.isUp()) svc.autoRestart();
        if (merge) svc.flush();
        in.feed(svc);
    }
    CAPTURE(in.events());
    CHECK(in.count(Event::Restart) == static_cast<std::size_t>(svc.automaticRestarts()));
    CHECK(in.runEnds() == static_cast<std::size_t>(svc.runEnds()));
    CHECK(in.count(Event::GiveUp) == 0);
}
