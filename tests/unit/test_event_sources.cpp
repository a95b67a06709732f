#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "alerting_fixtures.hpp"
#include "captured_stderr.hpp"
#include "core/fd.hpp"
#include "daemon/alerting.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/metrics.hpp"
#include "daemon/sources/alert_timer.hpp"
#include "daemon/sources/bus_follower.hpp"
#include "daemon/sources/deliveries.hpp"
#include "daemon/sources/flusher.hpp"
#include "daemon/sources/retention.hpp"
#include "daemon/sources/signals.hpp"
#include "daemon/sources/status.hpp"
#include "daemon/sources/store_sink.hpp"
#include "fake_clock.hpp"
#include "ingest/systemd_source.hpp"
#include "notify/dispatcher.hpp"
#include "notify/http.hpp"
#include "notify/payload.hpp"
#include "rules/rules.hpp"
#include "store/checkpoint.hpp"
#include "store/store.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace cerberus;
using namespace cerberus::daemon;
using core::Usec;
using core::USEC_PER_MSEC;
using core::USEC_PER_SEC;
using test::crashloopRules;
using test::event;
using test::FakeClock;
using test::TempDir;

namespace {

// Holds the database's write lock from a second connection while it lives.
class WriteLock {
public:
    explicit WriteLock(const std::string& path) {
        REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;
    ~WriteLock() {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite3_close_v2(db_);
    }

private:
    sqlite3* db_ = nullptr;
};

// A database whose writes give up after 10 ms when another connection holds the lock.
store::Database openQuickly(const std::string& path) {
    auto db = store::Database::open(path, store::OpenMode::ReadWrite);
    REQUIRE(sqlite3_busy_timeout(db.handle(), 10) == SQLITE_OK);
    return db;
}

core::Transition start(const std::string& unit, Usec ts_usec) {
    core::Transition t;
    t.ts_usec = ts_usec;
    t.mono_usec = ts_usec / 2;
    t.unit = unit;
    t.event = core::Event::Start;
    return t;
}

std::int64_t countTransitions(store::Database& db) {
    store::HistoryQuery query;
    query.limit = 10000;
    return static_cast<std::int64_t>(store::queryHistory(db, query).size());
}

// A bus that connects when told to and counts what the follower asks of it.
class FakeBus final : public Bus {
public:
    bool up = true;  // whether connect() succeeds
    bool connected_ = true;
    bool lose_on_process = false;
    int connects = 0;
    bool connected() const override { return connected_; }
    std::optional<std::string> connect() override {
        ++connects;
        if (!up) return "cannot connect to the test bus";
        connected_ = true;
        return std::nullopt;
    }
    bool process() override {
        if (lose_on_process) connected_ = false;
        return connected_;
    }
    std::string lastError() const override { return "connection reset"; }
    std::size_t unitsTracked() const override { return 3; }
    std::optional<Watch> watch() const override {
        if (!connected_) return std::nullopt;
        return Watch{7, EPOLLIN};
    }
    std::optional<Usec> deadline() const override { return std::nullopt; }
};

}  // namespace

TEST_CASE("timeoutMs rounds up, never waits past a due deadline, and waits at most an hour") {
    CHECK(timeoutMs(std::nullopt, 1000) == -1);
    CHECK(timeoutMs(900, 1000) == 0);
    CHECK(timeoutMs(1000, 1000) == 0);
    CHECK(timeoutMs(1001, 1000) == 1);
    CHECK(timeoutMs(1000 + 2 * USEC_PER_MSEC, 1000) == 2);
    CHECK(timeoutMs(1000 + 24 * 3600 * USEC_PER_SEC, 1000) == 3600 * 1000);
}

TEST_CASE("a wall-clock deadline becomes a monotonic one, and a past one is due now") {
    FakeClock clock;
    const Usec now = clock.monotonic();
    CHECK_FALSE(monotonicDeadline(std::nullopt, now, clock).has_value());
    CHECK(monotonicDeadline(clock.realtime() + 5 * USEC_PER_SEC, now, clock) ==
          now + 5 * USEC_PER_SEC);
    CHECK(monotonicDeadline(clock.realtime() - USEC_PER_SEC, now, clock) == now);
}

TEST_CASE("the loop wakes every source in order, on an fd or a deadline, until stopped") {
    FakeClock clock;
    EventLoop loop(clock);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    core::UniqueFd read_end(fds[0]);
    core::UniqueFd write_end(fds[1]);
    REQUIRE(::write(write_end.get(), "x", 1) == 1);

    struct Recorder final : EventSource {
        std::vector<std::string>& order;
        std::string name;
        std::optional<Watch> watching;
        std::optional<Usec> due;
        std::function<void()> then;
        Recorder(std::vector<std::string>& o, std::string n) : order(o), name(std::move(n)) {}
        std::optional<Watch> watch() const override { return watching; }
        std::optional<Usec> deadline(Usec /*now*/) const override { return due; }
        void onWake(Usec /*now*/) override {
            order.push_back(name);
            if (then) then();
        }
    };
    std::vector<std::string> order;
    // A readable pipe wakes the loop at once; nothing else could (no deadline).
    Recorder reader(order, "reader");
    reader.watching = Watch{read_end.get(), EPOLLIN};
    Recorder timer(order, "timer");
    int wakes = 0;
    timer.then = [&] {
        if (++wakes == 2) loop.stop();
    };
    loop.add(reader);
    loop.add(timer);
    loop.run();
    CHECK(order == std::vector<std::string>{"reader", "timer", "reader", "timer"});

    // A due deadline wakes it with nothing to read.
    char byte = 0;
    REQUIRE(::read(read_end.get(), &byte, 1) == 1);
    order.clear();
    wakes = 0;
    timer.due = clock.monotonic();
    EventLoop again(clock);
    timer.then = [&] {
        if (++wakes == 2) again.stop();
    };
    again.add(reader);
    again.add(timer);
    again.run();
    CHECK(order == std::vector<std::string>{"reader", "timer", "reader", "timer"});
}

TEST_CASE("the bus follower reconnects with a backoff that doubles up to five seconds") {
    FakeBus bus;
    BusFollower follower(bus, "test bus");
    Usec now = 1000 * USEC_PER_SEC;
    CHECK(follower.watch() == Watch{7, EPOLLIN});

    follower.onWake(now);  // connected, processing: nothing to do
    CHECK_FALSE(follower.reconnectAt().has_value());
    CHECK(bus.connects == 0);

    bus.lose_on_process = true;
    bus.up = false;
    follower.onWake(now);
    bus.lose_on_process = false;
    REQUIRE(follower.reconnectAt() == now + 100 * USEC_PER_MSEC);
    CHECK(follower.deadline(now) == now + 100 * USEC_PER_MSEC);
    CHECK_FALSE(follower.watch().has_value());

    // Woken early (another source's event): no attempt before the backoff has passed.
    follower.onWake(now + 50 * USEC_PER_MSEC);
    CHECK(bus.connects == 0);

    std::vector<Usec> waits;
    for (int attempt = 0; attempt < 8; ++attempt) {
        const Usec at = *follower.reconnectAt();
        follower.onWake(at);
        waits.push_back(*follower.reconnectAt() - at);
    }
    CHECK(bus.connects == 8);
    CHECK(waits == std::vector<Usec>{200 * USEC_PER_MSEC, 400 * USEC_PER_MSEC, 800 * USEC_PER_MSEC,
                                     1600 * USEC_PER_MSEC, 3200 * USEC_PER_MSEC, 5 * USEC_PER_SEC,
                                     5 * USEC_PER_SEC, 5 * USEC_PER_SEC});

    bus.up = true;
    follower.onWake(*follower.reconnectAt());
    CHECK(bus.connected());
    CHECK_FALSE(follower.reconnectAt().has_value());
    CHECK_FALSE(follower.deadline(now).has_value());

    // The next outage starts the backoff over.
    now += 60 * USEC_PER_SEC;
    bus.lose_on_process = true;
    follower.onWake(now);
    CHECK(follower.reconnectAt() == now + 100 * USEC_PER_MSEC);
}

TEST_CASE("the flusher keeps a failed flush queued and retries it with a backoff") {
    TempDir dir;
    const auto path = dir.file("c.db");
    auto db = openQuickly(path);
    store::HistoryWriter writer(db);
    store::Checkpointer checkpointer(db);
    std::vector<std::size_t> flushed;
    int emptied = 0;
    Flusher flusher(
        db, writer, checkpointer,
        [&](const store::Flushed& result) { flushed.push_back(result.written); },
        [&] { ++emptied; });
    Usec now = 1000 * USEC_PER_SEC;
    CHECK_FALSE(flusher.deadline(now).has_value());  // nothing queued
    flusher.onWake(now);
    CHECK(emptied == 1);

    writer.add(start("a.service", 1));
    REQUIRE(flusher.deadline(now) <= now);  // due at once
    {
        WriteLock other(path);
        flusher.onWake(now);
        CHECK(flusher.failing());
        CHECK(writer.pending() == 1);
        CHECK(flusher.deadline(now) == now + 100 * USEC_PER_MSEC);
        CHECK(emptied == 1);
        // Woken early: no attempt, the retry stays where it was.
        flusher.onWake(now + 10 * USEC_PER_MSEC);
        CHECK(flusher.deadline(now) == now + 100 * USEC_PER_MSEC);
        now += 100 * USEC_PER_MSEC;
        flusher.onWake(now);
        CHECK(flusher.deadline(now) == now + 200 * USEC_PER_MSEC);
        now += 200 * USEC_PER_MSEC;
    }
    CHECK(flushed.empty());
    flusher.onWake(now);
    CHECK_FALSE(flusher.failing());
    CHECK(writer.pending() == 0);
    CHECK(flushed == std::vector<std::size_t>{1});
    CHECK(emptied == 2);
    CHECK(countTransitions(db) == 1);

    // A success resets the backoff: the next change is due at once, and a failure waits the
    // shortest time again.
    writer.add(start("a.service", 2));
    CHECK(flusher.deadline(now) <= now);
    WriteLock other(path);
    flusher.onWake(now);
    CHECK(flusher.deadline(now) == now + 100 * USEC_PER_MSEC);
}

TEST_CASE("retention prunes at start, in quick batches while they come back full, then hourly") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    FakeClock clock;
    const Usec wall = clock.realtime();
    store::HistoryWriter writer(db);
    for (int i = 0; i < 5; ++i) writer.add(start("old.service", wall - 10 * USEC_PER_SEC + i));
    writer.add(start("new.service", wall));
    REQUIRE(writer.flush().ok());

    Retention retention(db, 5 * USEC_PER_SEC, clock, 2);
    Usec now = clock.monotonic();
    REQUIRE(retention.deadline(now) == now);
    retention.onWake(now);
    CHECK(countTransitions(db) == 4);
    CHECK(retention.deadline(now) == now + RETENTION_NEXT_BATCH_USEC);

    retention.onWake(now + USEC_PER_MSEC);  // not due yet
    CHECK(countTransitions(db) == 4);

    now += RETENTION_NEXT_BATCH_USEC;
    retention.onWake(now);
    CHECK(countTransitions(db) == 2);
    CHECK(retention.deadline(now) == now + RETENTION_NEXT_BATCH_USEC);
    now += RETENTION_NEXT_BATCH_USEC;
    retention.onWake(now);  // one left to delete: a short batch
    CHECK(countTransitions(db) == 1);
    CHECK(retention.deadline(now) == now + RETENTION_EVERY_USEC);

    // A locked database is tried again after the longest backoff, not an hour later.
    now += RETENTION_EVERY_USEC;
    {
        WriteLock other(dir.file("c.db"));
        retention.onWake(now);
    }
    CHECK(retention.deadline(now) == now + RETRY_MAX_USEC);
}

TEST_CASE("retention without --keep never wakes and deletes nothing") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    FakeClock clock;
    store::HistoryWriter writer(db);
    writer.add(start("old.service", 1));
    REQUIRE(writer.flush().ok());
    Retention retention(db, std::nullopt, clock);
    CHECK_FALSE(retention.deadline(clock.monotonic()).has_value());
    retention.onWake(clock.monotonic());
    CHECK(countTransitions(db) == 1);
}

TEST_CASE("the watchdog pings at once, then once per interval however often it is woken") {
    std::vector<std::string> sent;
    Watchdog watchdog(10 * USEC_PER_SEC, [&](const std::string& m) { sent.push_back(m); });
    const Usec t0 = 1000 * USEC_PER_SEC;
    watchdog.onWake(t0);
    CHECK(sent == std::vector<std::string>{"WATCHDOG=1"});
    CHECK(watchdog.deadline(t0) == t0 + 10 * USEC_PER_SEC);
    for (Usec t = t0; t < t0 + 10 * USEC_PER_SEC; t += USEC_PER_SEC) watchdog.onWake(t);
    CHECK(sent.size() == 1);
    watchdog.onWake(t0 + 10 * USEC_PER_SEC);
    CHECK(sent.size() == 2);
    CHECK(watchdog.deadline(t0) == t0 + 20 * USEC_PER_SEC);
}

TEST_CASE("without a watchdog interval the watchdog has no deadline and never pings") {
    std::vector<std::string> sent;
    Watchdog watchdog(std::nullopt, [&](const std::string& m) { sent.push_back(m); });
    CHECK_FALSE(watchdog.deadline(0).has_value());
    watchdog.onWake(0);
    watchdog.onWake(3600 * USEC_PER_SEC);
    CHECK(sent.empty());
}

TEST_CASE("the heartbeat asks for a flush at most once a minute") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    store::HistoryWriter writer(db);
    writer.keepHeartbeat();
    Heartbeat heartbeat(writer);
    const Usec t0 = 1000 * USEC_PER_SEC;
    heartbeat.onWake(t0);
    CHECK(writer.pending() == 1);
    REQUIRE(writer.flush().ok());
    heartbeat.onWake(t0 + 59 * USEC_PER_SEC);
    CHECK(writer.pending() == 0);
    heartbeat.onWake(t0 + HEARTBEAT_EVERY_USEC);
    CHECK(writer.pending() == 1);
    CHECK_FALSE(heartbeat.deadline(t0).has_value());
}

TEST_CASE("SIGHUP reloads and SIGTERM stops, read from the signalfd on a wake") {
    int stops = 0;
    int reloads = 0;
    Signals signals([&] { ++stops; }, [&] { ++reloads; });
    REQUIRE(signals.watch().has_value());
    CHECK_FALSE(signals.deadline(0).has_value());
    signals.onWake(0);  // nothing pending
    CHECK(stops + reloads == 0);

    // Blocked by the constructor: raised signals wait in the signalfd.
    REQUIRE(::raise(SIGHUP) == 0);
    signals.onWake(0);
    CHECK(reloads == 1);
    CHECK(stops == 0);
    REQUIRE(::raise(SIGTERM) == 0);
    signals.onWake(0);
    CHECK(stops == 1);
    CHECK(reloads == 1);
}

TEST_CASE("the delivery log counts outcomes and reads the outbox again only after a change") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    store::HistoryWriter writer(db);
    int changes = 0;
    DeliveryLog log(db, writer, [&] { ++changes; });
    log.countOutbox();
    CHECK(log.outboxPending() == 0);
    CHECK(changes == 1);
    log.countOutbox();  // nothing changed: not read, nothing to republish
    CHECK(changes == 1);

    store::OutboxUpdate update;
    update.id = 1;
    update.status = "sent";
    log.record("hook", OUTCOME_SENT, update);
    log.record("hook", OUTCOME_SENT, update);
    log.record("hook", OUTCOME_FAILED, update);
    CHECK(log.notifications() ==
          DeliveryLog::Counts{{{"hook", "sent"}, 2}, {{"hook", "failed"}, 1}});
    CHECK(writer.pending() == 3);  // each outcome goes to its row in the next flush
    CHECK(changes == 4);
    log.countOutbox();
    CHECK(changes == 5);
}

namespace {

// Renames `table` while it lives, so that every read of it fails; then puts it back.
class HiddenTable {
public:
    HiddenTable(store::Database& db, std::string table) : db_(db), table_(std::move(table)) {
        REQUIRE(exec("ALTER TABLE " + table_ + " RENAME TO hidden_" + table_));
    }
    HiddenTable(const HiddenTable&) = delete;
    HiddenTable& operator=(const HiddenTable&) = delete;
    ~HiddenTable() { CHECK(exec("ALTER TABLE hidden_" + table_ + " RENAME TO " + table_)); }

private:
    bool exec(const std::string& sql) {
        return sqlite3_exec(db_.handle(), sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
    }
    store::Database& db_;
    std::string table_;
};

// One alert with one row for the "log" receiver, committed.
void commitOneNotification(store::HistoryWriter& writer) {
    notify::Notification n;
    n.rule = "crashloop";
    n.unit = "job.service";
    n.host = "host";
    store::AlertWrite fire;
    fire.rule = n.rule;
    fire.unit = n.unit;
    fire.host = n.host;
    fire.severity = "critical";
    fire.notifications = {{"log", "trigger", notify::encode(n)}};
    writer.addAlert(fire);
    REQUIRE(writer.flush().ok());
}

}  // namespace

TEST_CASE("an outbox that cannot be read is logged once per attempt and read at the next wake") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    store::HistoryWriter writer(db);
    commitOneNotification(writer);
    FakeClock clock;
    notify::HttpClient http;
    notify::Dispatcher dispatcher(http, clock, [](core::Priority, const std::string&) {});
    DeliveryLog log(db, writer, [] {});
    OutboxFeeder feeder(db, dispatcher, log, clock);
    test::CapturedStderr err;
    {
        HiddenTable hidden(db, "notifications");
        feeder.load();
        CHECK(dispatcher.queued() == 0);
        CHECK(err.count("no such table: notifications") == 1);
        CHECK(err.count("; retrying") == 1);
    }
    feeder.load();  // the same rows, read again
    CHECK(dispatcher.queued() == 1);
    CHECK(err.count("; retrying") == 1);  // nothing more to say
    feeder.load();                        // read already: nothing new committed since
    CHECK(dispatcher.queued() == 1);
}

TEST_CASE("an outbox count that cannot be read is unknown, never empty, and read again") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    store::HistoryWriter writer(db);
    commitOneNotification(writer);
    int changes = 0;
    DeliveryLog log(db, writer, [&] { ++changes; });
    {
        HiddenTable hidden(db, "notifications");
        log.countOutbox();
        CHECK_FALSE(log.outboxPending().has_value());
        CHECK(changes == 1);
    }
    log.countOutbox();  // still to be read: the failed count left it marked changed
    CHECK(log.outboxPending() == 1);
    CHECK(changes == 2);
}

TEST_CASE("STATUS= follows the firing alerts, and the alert timer resolves them when due") {
    TempDir dir;
    auto db = openQuickly(dir.file("c.db"));
    store::HistoryWriter writer(db);
    FakeClock clock;
    Alerting alerting(crashloopRules(), db, writer, "host");
    StoreSink sink(writer, alerting);
    ingest::SystemdSource bus(ingest::BusSpec{"user"}, sink, clock);  // never connected
    DeliveryLog deliveries(db, writer, [] {});
    std::vector<std::string> sent;
    StatusPublisher publisher({sink, writer, bus, alerting, deliveries, nullptr}, "test bus", clock,
                              [&](const std::string& m) { sent.push_back(m); });
    int ticks = 0;
    AlertTimer timer(alerting, clock, [&] { ++ticks; });

    publisher.publish();
    REQUIRE(sent.size() == 1);
    CHECK(sent.back() == "STATUS=Reconnecting to the test bus; 0 units tracked, 0 alerts firing");
    publisher.onWake(clock.monotonic());  // nothing changed
    CHECK(sent.size() == 1);
    CHECK_FALSE(timer.deadline(clock.monotonic()).has_value());

    const Usec wall = clock.realtime();
    for (int i = 0; i < 3; ++i)
        sink.onTransition(event("job.service", core::Event::Crash, wall + i));
    publisher.onWake(clock.monotonic());
    REQUIRE(sent.size() == 2);
    CHECK(sent.back() == "STATUS=Reconnecting to the test bus; 0 units tracked, 1 alert firing");

    sink.onTransition(event("job.service", core::Event::Start, wall + 3 * USEC_PER_SEC));
    const Usec now = clock.monotonic();
    REQUIRE(timer.deadline(now) == now + 13 * USEC_PER_SEC);
    timer.onWake(now);  // not due: no tick
    CHECK(ticks == 0);
    CHECK(alerting.firing() == 1);

    clock.advance(13 * USEC_PER_SEC);
    timer.onWake(clock.monotonic());
    CHECK(ticks == 1);
    CHECK(alerting.firing() == 0);
    publisher.markChanged();
    publisher.onWake(clock.monotonic());
    REQUIRE(sent.size() == 3);
    CHECK(sent.back() == "STATUS=Reconnecting to the test bus; 0 units tracked, 0 alerts firing");
}
