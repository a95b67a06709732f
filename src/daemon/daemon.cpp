#include "daemon/daemon.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/log.hpp"
#include "daemon/alerting.hpp"
#include "daemon/metrics.hpp"
#include "ingest/emit.hpp"
#include "ingest/systemd_source.hpp"
#include "notify/dispatcher.hpp"
#include "notify/http.hpp"
#include "notify/journal.hpp"
#include "notify/secrets.hpp"
#include "store/checkpoint.hpp"
#include "store/store.hpp"

namespace cerberus::daemon {

namespace {

using core::Usec;
using core::USEC_PER_MSEC;
using core::USEC_PER_SEC;

constexpr Usec RETRY_MIN_USEC = 100 * USEC_PER_MSEC;
constexpr Usec RETRY_MAX_USEC = 5 * USEC_PER_SEC;
constexpr Usec RETENTION_EVERY_USEC = 3600 * USEC_PER_SEC;
constexpr Usec RETENTION_NEXT_BATCH_USEC = 50 * USEC_PER_MSEC;
constexpr Usec SHUTDOWN_FLUSH_USEC = 3 * USEC_PER_SEC;
constexpr Usec SHUTDOWN_DELIVERY_USEC = 3 * USEC_PER_SEC;
constexpr int RETENTION_BATCH = 2000;
constexpr Usec HEARTBEAT_EVERY_USEC = 60 * USEC_PER_SEC;

using core::Priority;

template <typename... Args>
void logLine(Priority priority, const char* format, Args... args) {
    const int size = std::snprintf(nullptr, 0, format, args...);
    std::string line(size > 0 ? static_cast<std::size_t>(size) : 0, '\0');
    std::snprintf(line.data(), line.size() + 1, format, args...);
    core::log(priority, line);
}

// Resolves every receiver's secrets; an error names the receiver, never the value.
std::optional<std::map<std::string, notify::Target>> targetsOf(const rules::RuleSet& rules,
                                                               std::string& errors) {
    auto targets = notify::resolveTargets(rules.receivers, [](const char* name) {
        return static_cast<const char*>(std::getenv(name));
    });
    if (targets.ok()) return std::move(targets.by_name);
    for (const auto& error : targets.errors) errors += "\n  " + error;
    return std::nullopt;
}

// Exponential backoff between two limits.
class Backoff {
public:
    Usec next() {
        const Usec out = current_;
        current_ = std::min(current_ * 2, RETRY_MAX_USEC);
        return out;
    }
    void reset() { current_ = RETRY_MIN_USEC; }

private:
    Usec current_ = RETRY_MIN_USEC;
};

using TransitionCounts = std::map<std::pair<core::Event, core::Source>, std::uint64_t>;

// Feeds what the source sees into the history writer.
class StoreSink final : public ingest::TransitionSink {
public:
    StoreSink(store::HistoryWriter& writer, Alerting& alerting)
        : writer_(writer), alerting_(alerting) {}
    void onTransition(core::Transition transition) override {
        ++transitions_;
        ++by_event_[{transition.event, transition.source}];
        // The transition goes first so that its alert change lands in the same flush.
        alerting_.observe(transition);
        writer_.add(std::move(transition));
    }
    void onUnit(const core::UnitSnapshot& snapshot) override { writer_.putUnit(snapshot); }
    void onManager(const std::string& identity) override { writer_.putManager(identity); }
    std::uint64_t transitions() const { return transitions_; }
    const TransitionCounts& byEvent() const { return by_event_; }

private:
    store::HistoryWriter& writer_;
    Alerting& alerting_;
    std::uint64_t transitions_ = 0;
    TransitionCounts by_event_;
};

std::string_view outcomeLabel(notify::Status status) {
    switch (status) {
    case notify::Status::Sent: return OUTCOME_SENT;
    case notify::Status::Pending: return OUTCOME_RETRIED;
    case notify::Status::Failed: return OUTCOME_FAILED;
    }
    return OUTCOME_FAILED;
}

core::UniqueFd makeSignalFd() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot block signals: ") + std::strerror(errno));
    core::UniqueFd fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot create a signalfd: ") + std::strerror(errno));
    return fd;
}

class Loop {
public:
    Loop(const Options& options, store::Database& db, ingest::SystemdSource& source,
         store::HistoryWriter& writer, StoreSink& sink, Alerting& alerting,
         notify::HttpClient& http, notify::Dispatcher& dispatcher,
         store::Checkpointer& checkpointer, store::WriterLock& lock, MetricsServer* metrics,
         ingest::EmitServer* emit)
        : options_(options),
          db_(db),
          lock_(lock),
          checkpointer_(checkpointer),
          source_(source),
          writer_(writer),
          sink_(sink),
          alerting_(alerting),
          http_(http),
          dispatcher_(dispatcher),
          metrics_(metrics),
          emit_(emit) {}

    int run();

private:
    void watchBus();
    int timeoutMs(Usec now) const;
    void handleSignals(bool& stop);
    void processBus(Usec now);
    void flush(Usec now);
    bool ownFile();
    void retention(Usec now);
    std::optional<Usec> alertDeadline(Usec now) const;
    std::optional<Usec> wallDeadline(std::optional<Usec> at, Usec now) const;
    void status(std::size_t firing);
    void publish();
    MetricsSnapshot snapshot(std::map<std::string, std::size_t> firing) const;
    void reload();
    void reloadRules();
    void loadOutbox();
    void record(const std::string& receiver, std::string_view outcome, store::OutboxUpdate update);
    void collectOutcomes();
    void countOutbox();
    void drainDeliveries();

    const Options& options_;
    store::Database& db_;
    store::WriterLock& lock_;
    store::Checkpointer& checkpointer_;
    ingest::SystemdSource& source_;
    store::HistoryWriter& writer_;
    StoreSink& sink_;
    Alerting& alerting_;
    notify::HttpClient& http_;
    notify::Dispatcher& dispatcher_;
    MetricsServer* metrics_;    // null without --metrics
    ingest::EmitServer* emit_;  // null when the daemon has no emit socket
    core::SystemClock clock_;
    std::int64_t outbox_loaded_ = 0;  // the highest outbox row id handed to the dispatcher
    bool outbox_stale_ = true;

    core::UniqueFd epoll_;
    core::UniqueFd signals_;
    int bus_fd_ = -1;
    std::uint32_t bus_events_ = 0;

    Backoff reconnect_backoff_;
    std::optional<Usec> reconnect_at_;
    bool reconnect_logged_ = false;
    Backoff flush_backoff_;
    Usec flush_at_ = 0;
    bool flush_failing_ = false;
    bool file_failing_ = false;  // the database's path holds no file, or another one
    bool checkpoint_failing_ = false;
    std::uint64_t dropped_reported_ = 0;
    std::optional<Usec> retention_at_;
    std::optional<Usec> watchdog_every_;
    Usec watchdog_at_ = 0;
    Usec heartbeat_at_ = 0;

    // What STATUS= and /metrics show, republished only when it changed: the counters below
    // are compared each iteration; changed_ marks what they cannot see (a tick, a reload,
    // delivery outcomes, a new outbox depth).
    struct Seen {
        std::uint64_t transitions = 0;
        std::uint64_t dropped = 0;
        std::uint64_t reconciles = 0;
        std::size_t units = 0;
        bool connected = false;
        bool operator==(const Seen&) const = default;
    };
    Seen seen_;
    bool changed_ = true;
    std::string status_;
    std::map<std::pair<std::string, std::string>, std::uint64_t> notifications_;
    std::optional<std::int64_t> outbox_pending_;  // nullopt: could not be read
    bool outbox_changed_ = true;
    std::optional<Usec> last_reconcile_usec_;
};

void Loop::watchBus() {
    const auto poll = source_.pollData();
    if (poll.fd == bus_fd_ && poll.epoll_events == bus_events_) return;
    if (bus_fd_ >= 0 && poll.fd != bus_fd_) {
        // The old fd may already be closed with its connection; then it left the set itself.
        epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, bus_fd_, nullptr);
        bus_fd_ = -1;
    }
    if (poll.fd < 0) return;
    epoll_event ev{};
    ev.events = poll.epoll_events;
    ev.data.fd = poll.fd;
    const int op = poll.fd == bus_fd_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(epoll_.get(), op, poll.fd, &ev) < 0 && errno == EEXIST)
        epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, poll.fd, &ev);
    bus_fd_ = poll.fd;
    bus_events_ = poll.epoll_events;
}

int Loop::timeoutMs(Usec now) const {
    std::optional<Usec> deadline;
    auto consider = [&deadline](std::optional<Usec> at) {
        if (at && (!deadline || *at < *deadline)) deadline = at;
    };
    consider(source_.pollData().deadline_mono);
    consider(reconnect_at_);
    if (writer_.pending() > 0) consider(flush_at_);
    consider(retention_at_);
    consider(alertDeadline(now));
    consider(http_.deadline());
    consider(wallDeadline(dispatcher_.nextDeadline(), now));
    if (watchdog_every_) consider(watchdog_at_);
    if (emit_) consider(emit_->deadline());
    if (!deadline) return -1;
    if (*deadline <= now) return 0;
    // Round up so that we never wake a millisecond early and spin.
    return static_cast<int>(
        std::min<Usec>((*deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC, 60 * 60 * 1000));
}

void Loop::handleSignals(bool& stop) {
    signalfd_siginfo info{};
    while (read(signals_.get(), &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop = true;
        if (info.ssi_signo == SIGHUP) reload();
    }
}

void Loop::processBus(Usec now) {
    if (source_.connected()) {
        if (!source_.process()) {
            logLine(Priority::Err, "lost the %s: %s; reconnecting",
                    ingest::BusSpec{options_.bus}.describe().c_str(), source_.lastError().c_str());
            reconnect_backoff_.reset();
            reconnect_at_ = now + reconnect_backoff_.next();
            reconnect_logged_ = false;
        }
        return;
    }
    if (!reconnect_at_ || now < *reconnect_at_) return;
    try {
        source_.connect();
        if (source_.process()) {
            logLine(Priority::Notice, "reconnected to the %s; %zu units tracked",
                    ingest::BusSpec{options_.bus}.describe().c_str(), source_.unitsTracked());
            reconnect_at_.reset();
            return;
        }
    } catch (const core::Error& e) {
        if (!reconnect_logged_) logLine(Priority::Warning, "%s; retrying", e.what());
        reconnect_logged_ = true;
    }
    reconnect_at_ = now + reconnect_backoff_.next();
}

// The evaluator's and the dispatcher's deadlines are wall-clock times; the loop sleeps on
// the monotonic clock.
std::optional<Usec> Loop::wallDeadline(std::optional<Usec> at, Usec now) const {
    if (!at) return std::nullopt;
    return now + std::max<Usec>(0, *at - clock_.realtime());
}

std::optional<Usec> Loop::alertDeadline(Usec now) const {
    return wallDeadline(alerting_.nextDeadline(), now);
}

// systemctl waits for READY=1 after RELOADING=1 (what Type=notify-reload does in newer
// systemd), so `systemctl reload` returns once the rules are in force or refused.
void Loop::reload() {
    sd_notify(0, "RELOADING=1");
    reloadRules();
    sd_notify(0, "READY=1");
}

void Loop::reloadRules() {
    rules::LoadResult loaded;
    std::string errors;
    std::optional<std::map<std::string, notify::Target>> targets;
    // Nothing a rule or secret file holds may end the loop: whatever escapes the checks
    // below refuses the reload like an error they report.
    try {
        loaded = rules::loadRules(options_.rules_paths);
        for (const auto& error : loaded.errors) errors += "\n  " + error;
        if (loaded.ok()) targets = targetsOf(loaded.rules, errors);
    } catch (const std::exception& e) {
        errors += std::string("\n  ") + e.what();
        targets.reset();
    }
    if (!targets) {
        logLine(Priority::Err, "reload refused, the current rules stay in force:%s",
                errors.c_str());
        return;
    }
    alerting_.reload(std::move(loaded.rules), clock_.realtime());
    dispatcher_.setTargets(std::move(*targets));
    logLine(Priority::Info, "rules reloaded: %zu rules, %zu alerts firing", alerting_.ruleCount(),
            alerting_.firing());
    changed_ = true;
}

// Rows committed since the last load go to the dispatcher; a payload that cannot be read
// (an edited database) is marked failed rather than retried forever.
void Loop::loadOutbox() {
    if (!outbox_stale_) return;
    try {
        for (auto& row : store::loadPendingNotifications(db_, outbox_loaded_)) {
            outbox_loaded_ = std::max(outbox_loaded_, row.id);
            auto n = notify::decode(row.payload);
            if (!n) {
                store::OutboxUpdate update;
                update.id = row.id;
                update.status = "failed";
                update.attempts = row.attempts;
                update.last_error = "the payload is not a notification; not sent";
                record(row.receiver, OUTCOME_FAILED, std::move(update));
                continue;
            }
            notify::Delivery d;
            d.id = row.id;
            d.alert_id = row.alert_id;
            d.receiver = row.receiver;
            d.notification = std::move(*n);
            d.attempts = row.attempts;
            d.next_attempt_usec = row.next_attempt_usec;
            d.created_usec = row.created_usec;
            dispatcher_.add(std::move(d));
        }
        outbox_stale_ = false;
    } catch (const core::Error& e) {
        logLine(Priority::Err, "%s; retrying", e.what());
    }
}

void Loop::record(const std::string& receiver, std::string_view outcome,
                  store::OutboxUpdate update) {
    ++notifications_[{receiver, std::string(outcome)}];
    writer_.updateNotification(std::move(update));
    outbox_changed_ = true;
    changed_ = true;
}

void Loop::collectOutcomes() {
    for (auto& outcome : dispatcher_.takeOutcomes()) {
        store::OutboxUpdate update;
        update.id = outcome.id;
        update.status = std::string(notify::toString(outcome.status));
        update.attempts = outcome.attempts;
        update.next_attempt_usec = outcome.next_attempt_usec;
        update.last_error = std::move(outcome.last_error);
        update.sent_usec = outcome.sent_usec;
        record(outcome.receiver, outcomeLabel(outcome.status), std::move(update));
    }
}

// Read again only after a flush that changed the outbox; a failed read shows as unknown,
// never as an empty outbox.
void Loop::countOutbox() {
    if (!outbox_changed_) return;
    try {
        const auto counts = store::countNotifications(db_);
        const auto pending = counts.find("pending");
        outbox_pending_ = pending == counts.end() ? 0 : pending->second;
        outbox_changed_ = false;
    } catch (const core::Error&) {
        outbox_pending_.reset();
    }
    changed_ = true;
}

// Requests already on the wire get a bounded time to finish; what does not stays pending
// in the outbox and is sent again (same id) by the next start.
void Loop::drainDeliveries() {
    const Usec give_up_at = clock_.monotonic() + SHUTDOWN_DELIVERY_USEC;
    while (http_.inFlight() > 0) {
        const Usec now = clock_.monotonic();
        if (now >= give_up_at) break;
        Usec wait = give_up_at - now;
        if (const auto at = http_.deadline()) wait = std::min(wait, std::max<Usec>(0, *at - now));
        pollfd pfd{http_.fd(), POLLIN, 0};
        poll(&pfd, 1, static_cast<int>((wait + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
        http_.process();
    }
    collectOutcomes();
}

void Loop::status(std::size_t firing) {
    char text[256];
    if (source_.connected())
        std::snprintf(text, sizeof text, "Tracking %zu units, %zu alerts firing",
                      source_.unitsTracked(), firing);
    else
        std::snprintf(
            text, sizeof text, "Reconnecting to the %s; %zu units tracked, %zu alerts firing",
            ingest::BusSpec{options_.bus}.describe().c_str(), source_.unitsTracked(), firing);
    if (status_ == text) return;
    status_ = text;
    sd_notify(0, ("STATUS=" + status_).c_str());
}

MetricsSnapshot Loop::snapshot(std::map<std::string, std::size_t> firing) const {
    MetricsSnapshot out;
    out.transitions = sink_.byEvent();
    out.transitions_dropped = writer_.dropped();
    out.alerts_firing = std::move(firing);
    out.notifications = notifications_;
    // Every configured receiver shows each outcome, 0 until it happens.
    for (const auto& receiver : alerting_.rules().receivers)
        for (const auto outcome : {OUTCOME_SENT, OUTCOME_RETRIED, OUTCOME_FAILED})
            out.notifications.try_emplace({receiver.name, std::string(outcome)}, 0);
    out.outbox_pending = outbox_pending_;
    out.units_tracked = source_.unitsTracked();
    out.bus_connected = source_.connected();
    out.last_reconcile_usec = last_reconcile_usec_;
    return out;
}

// Once per loop iteration; cheap unless something changed.
void Loop::publish() {
    const Seen seen{sink_.transitions(), writer_.dropped(), source_.stats().reconciles,
                    source_.unitsTracked(), source_.connected()};
    if (seen.reconciles != seen_.reconciles) last_reconcile_usec_ = clock_.realtime();
    if (!changed_ && seen == seen_) return;
    seen_ = seen;
    changed_ = false;
    auto firing = alerting_.firingByRule();
    std::size_t total = 0;
    for (const auto& [rule, count] : firing) total += count;
    status(total);
    if (metrics_) metrics_->publish(snapshot(std::move(firing)));
}

// Whether the file at the database's path is still the one this daemon writes, checked with
// one stat() before each flush. A deleted file is put back from the open connection, so
// nothing stored is lost. Another file there is not ours to write: the queue waits.
bool Loop::ownFile() {
    switch (db_.checkFile()) {
    case store::FileState::Same:
    case store::FileState::Unknown:  // cannot tell; the open connection still works
        return true;
    case store::FileState::Deleted: {
        checkpointer_.stop();
        const auto restored = db_.restore();
        checkpointer_.start();
        if (restored.ok()) {
            logLine(Priority::Warning,
                    "database '%s' was deleted while cerberus ran; restored it from the open "
                    "connection, nothing is lost",
                    db_.path().c_str());
            return true;
        }
        if (!file_failing_)
            logLine(Priority::Err,
                    "database '%s' was deleted while cerberus ran: %s; keeping %zu changes "
                    "queued and retrying",
                    db_.path().c_str(), restored.error().c_str(), writer_.pending());
        file_failing_ = true;
        return false;
    }
    case store::FileState::Replaced:
        if (!file_failing_)
            logLine(Priority::Err,
                    "database '%s' was replaced by another file while cerberus ran; not writing "
                    "to it, keeping %zu changes queued and retrying: remove the new file to have "
                    "cerberus restore its own, or restart cerberus to use the new one",
                    db_.path().c_str(), writer_.pending());
        file_failing_ = true;
        return false;
    }
    return false;
}

void Loop::flush(Usec now) {
    if (writer_.pending() == 0 || now < flush_at_) return;
    if (!ownFile()) {
        flush_at_ = now + flush_backoff_.next();
        return;
    }
    const auto result = writer_.flush();
    if (result.ok()) {
        if (result.value().notifications > 0) outbox_stale_ = outbox_changed_ = true;
        countOutbox();
        if (flush_failing_ || file_failing_)
            logLine(Priority::Notice, "writing to '%s' again; the queued transitions are stored",
                    db_.path().c_str());
        flush_failing_ = false;
        file_failing_ = false;
        flush_backoff_.reset();
        flush_at_ = 0;
        const auto checkpoint = checkpointer_.takeFailure();
        if (checkpoint && !checkpoint_failing_)
            logLine(Priority::Warning,
                    "cannot checkpoint '%s': %s; its -wal file grows until a checkpoint succeeds",
                    db_.path().c_str(), checkpoint->message.c_str());
        checkpoint_failing_ = checkpoint.has_value();
    } else {
        if (!flush_failing_)
            logLine(Priority::Err,
                    "cannot write to '%s': %s; keeping %zu changes queued and retrying",
                    db_.path().c_str(), result.error().c_str(), writer_.pending());
        flush_failing_ = true;
        flush_at_ = now + flush_backoff_.next();
    }
    if (writer_.dropped() != dropped_reported_) {
        logLine(Priority::Err, "the write queue is full: %llu transitions dropped so far",
                static_cast<unsigned long long>(writer_.dropped()));
        dropped_reported_ = writer_.dropped();
    }
}

void Loop::retention(Usec now) {
    if (!options_.keep_usec || !retention_at_ || now < *retention_at_) return;
    const auto deleted =
        store::pruneTransitions(db_, clock_.realtime() - *options_.keep_usec, RETENTION_BATCH);
    if (!deleted.ok()) {
        logLine(Priority::Warning, "retention: %s; retrying later", deleted.error().c_str());
        retention_at_ = now + RETRY_MAX_USEC;
        return;
    }
    retention_at_ = now + (deleted.value() == RETENTION_BATCH ? RETENTION_NEXT_BATCH_USEC
                                                              : RETENTION_EVERY_USEC);
}

int Loop::run() {
    epoll_ = core::UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot create an epoll fd: ") + std::strerror(errno));
    signals_ = makeSignalFd();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = signals_.get();
    epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signals_.get(), &ev);
    ev.data.fd = http_.fd();
    epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, http_.fd(), &ev);
    if (emit_) {
        ev.data.fd = emit_->fd();
        epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, emit_->fd(), &ev);
    }

    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0)
        watchdog_every_ = static_cast<Usec>(watchdog_usec / 2);
    if (options_.keep_usec) retention_at_ = clock_.monotonic();

    // Everything loaded has been read and reconciled by the caller's first process().
    flush(clock_.monotonic());
    // What start-up decided (rows `cerberus emit` stored while no daemon ran, deadlines that
    // fell due) is delivered now, not at the first wakeup, which an idle host may not bring.
    loadOutbox();
    dispatcher_.run();
    logLine(Priority::Info,
            "following the %s: %zu units tracked, %zu rules, %zu alerts firing, history in '%s'",
            ingest::BusSpec{options_.bus}.describe().c_str(), source_.unitsTracked(),
            alerting_.ruleCount(), alerting_.firing(), db_.path().c_str());
    countOutbox();
    publish();
    if (metrics_) {
        metrics_->start();
        logLine(Priority::Info, "serving metrics at http://%s/metrics",
                options_.metrics->describe().c_str());
    }
    sd_notify(0, "READY=1");

    bool stop = false;
    epoll_event events[4];
    while (!stop) {
        watchBus();
        const int n = epoll_wait(epoll_.get(), events, 4, timeoutMs(clock_.monotonic()));
        if (n < 0 && errno != EINTR)
            throw core::Error(core::ExitCode::Failure,
                              std::string("epoll_wait failed: ") + std::strerror(errno));
        handleSignals(stop);
        const Usec now = clock_.monotonic();
        processBus(now);
        if (emit_) emit_->process(clock_.realtime(), now);
        if (const auto due = alertDeadline(now); due && *due <= now) {
            alerting_.tick(clock_.realtime());
            changed_ = true;
        }
        http_.process();
        collectOutcomes();
        flush(now);
        // An emit request is answered once what it delivered is committed.
        if (emit_ && writer_.pending() == 0) emit_->committed();
        loadOutbox();
        dispatcher_.run();
        collectOutcomes();
        retention(now);
        // A flush records the heartbeat; on a quiet host one is made at most every minute.
        if (now >= heartbeat_at_) {
            writer_.beat();
            heartbeat_at_ = now + HEARTBEAT_EVERY_USEC;
        }
        if (watchdog_every_ && now >= watchdog_at_) {
            sd_notify(0, "WATCHDOG=1");
            watchdog_at_ = now + *watchdog_every_;
        }
        publish();
    }

    sd_notify(0, "STOPPING=1\nSTATUS=Stopping: finishing deliveries and writes");
    // Intake has stopped; the store gets a bounded time to take what is queued.
    const auto flushQueued = [this] {
        const Usec give_up_at = clock_.monotonic() + SHUTDOWN_FLUSH_USEC;
        while (writer_.pending() > 0 && clock_.monotonic() < give_up_at) {
            if (ownFile() && writer_.flush().ok()) break;
            usleep(static_cast<useconds_t>(RETRY_MIN_USEC));
        }
        if (emit_ && writer_.pending() == 0) emit_->committed();
    };
    // From here a `cerberus emit` that finds no socket appends beside this daemon: the next
    // start evaluates its rows.
    lock_.markStopping();
    if (emit_) {
        // From here a `cerberus emit` appends to the database itself. The clients waiting
        // for their commit are answered before the deliveries' grace time, within theirs.
        emit_->stopListening();
        flushQueued();
    }
    drainDeliveries();
    writer_.beat();  // the moment this run stopped watching
    flushQueued();
    // A file deleted while nothing was queued is put back before the connection closes.
    ownFile();
    if (writer_.pending() > 0) {
        logLine(Priority::Err, "stopping with %zu changes not written to '%s'", writer_.pending(),
                db_.path().c_str());
        return static_cast<int>(core::ExitCode::Database);
    }
    logLine(Priority::Info, "stopped; %llu transitions recorded in this run",
            static_cast<unsigned long long>(sink_.transitions()));
    return 0;
}

}  // namespace

// Where and for whom the emit socket listens; nullopt for none. Checked before anything is
// written: an unknown group is a usage error.
static std::optional<ingest::EmitSocketOptions> emitOptions(const Options& options) {
    if (options.emit_socket == "none") return std::nullopt;
    ingest::EmitSocketOptions emit;
    emit.path = options.emit_socket.empty() ? ingest::defaultSocketPath() : options.emit_socket;
    if (!options.emit_group.empty()) {
        emit.group = ingest::groupId(options.emit_group);
        if (!emit.group)
            throw core::Error(core::ExitCode::Usage, "--emit-group '" + options.emit_group +
                                                         "' is not a group on this host; "
                                                         "create it or name another");
        emit.group_name = options.emit_group;
    }
    if (emit.path.empty()) {
        logLine(Priority::Warning,
                "no emit socket: XDG_RUNTIME_DIR is not set; pass --emit-socket PATH");
        return std::nullopt;
    }
    return emit;
}

// An explicit --emit-socket must work; the default one is best effort.
static std::unique_ptr<ingest::EmitServer> listenForEmit(const Options& options,
                                                         ingest::EmitSocketOptions emit,
                                                         store::Database& db,
                                                         ingest::TransitionSink& sink) {
    try {
        return std::make_unique<ingest::EmitServer>(
            std::move(emit), [&sink](core::Transition t) { sink.onTransition(std::move(t)); },
            [&db](const std::string& unit) { return store::lastTransition(db, unit); },
            [](const std::string& line) { core::log(Priority::Warning, line); });
    } catch (const core::Error& e) {
        if (!options.emit_socket.empty()) throw;
        logLine(Priority::Warning, "%s; running without an emit socket", e.what());
        return nullptr;
    }
}

// systemd gives services a soft limit of 1024 descriptors for the sake of programs that
// use select(). Nothing here does (sd-bus, libcurl and the /metrics server poll or epoll),
// so the daemon takes the hard limit, as systemd recommends: clients of one socket cannot
// leave the bus, the database, the journal or a delivery without a descriptor.
static void raiseOpenFilesLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur >= limit.rlim_max) return;
    const rlim_t wanted = limit.rlim_max;
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        logLine(Priority::Warning, "cannot raise the open files limit to %llu: %s, ignoring",
                static_cast<unsigned long long>(wanted), std::strerror(errno));
}

static std::string hostName() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

int run(const Options& options) {
    // glibc gives the top of the heap back to the kernel once 128 KiB are free there, and
    // each commit frees and takes back about that much: every alert's commit then paid for
    // a brk() and the page faults of fresh memory (measured: 2 rows took 430 us to insert,
    // 50 us with this). A few MiB kept instead cost nothing on a daemon's footprint.
    mallopt(M_TRIM_THRESHOLD, 4 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
    // A peer that closes its end (an emit client, a metrics scraper, a receiver) is an
    // error on that write, not the end of the daemon.
    signal(SIGPIPE, SIG_IGN);
    raiseOpenFilesLimit();
    core::SystemClock clock;
    auto rule_set = loadRulesOrThrow(options.rules_paths);
    std::string errors;
    auto targets = targetsOf(rule_set, errors);
    if (!targets)
        throw core::Error(core::ExitCode::Failure, "the receivers are unusable:" + errors);
    // Bound first: a port in use stops the start-up before anything is written.
    std::optional<MetricsServer> metrics;
    if (options.metrics) metrics.emplace(*options.metrics);
    auto emit_options = emitOptions(options);
    // Nothing is written before the bus answers: a wrong --bus leaves no database behind.
    // Declared first, released last: after the database's connection has closed.
    std::optional<store::WriterLock> lock;
    std::optional<store::Database> db;
    std::optional<store::HistoryWriter> writer;
    std::optional<StoreSink> sink;
    std::optional<Alerting> alerting;

    // The sink needs the writer, the writer the database, and the database comes after
    // the bus check; a small trampoline sink lets the source exist first.
    class Deferred final : public ingest::TransitionSink {
    public:
        ingest::TransitionSink* target = nullptr;
        void onTransition(core::Transition t) override { target->onTransition(std::move(t)); }
        void onUnit(const core::UnitSnapshot& s) override { target->onUnit(s); }
        void onManager(const std::string& identity) override { target->onManager(identity); }
    } deferred;

    ingest::SystemdSource source(ingest::BusSpec{options.bus}, deferred, clock);
    source.connect();

    // One writer per database, before the first write: a second daemon stops here.
    lock.emplace(store::WriterLock::acquire(options.db_path));
    db.emplace(store::Database::open(options.db_path, store::OpenMode::ReadWrite));
    writer.emplace(*db);
    store::Checkpointer checkpointer(*db);
    notify::JournalReader journal;
    if (options.bus == "system" && !notify::systemJournalReadable())
        logLine(Priority::Warning,
                "cannot read the system journal: alerts will carry no journal lines; run cerberus "
                "in the systemd-journal group (SupplementaryGroups=systemd-journal in its unit) "
                "or as root");
    alerting.emplace(std::move(rule_set), *db, *writer, hostName(), &journal);
    sink.emplace(*writer, *alerting);
    // Listening before the catch-up: a `cerberus emit` from now on talks to the daemon
    // instead of appending rows that this start would not see.
    std::unique_ptr<ingest::EmitServer> emit;
    if (emit_options) emit = listenForEmit(options, std::move(*emit_options), *db, *sink);
    // Windows first, from the stored history; then what systemd reports now.
    alerting->start(clock.realtime());
    deferred.target = &*sink;
    source.seed(store::loadUnits(*db), store::loadManager(*db), store::lastWatched(*db));
    writer->keepHeartbeat();

    if (!source.process())
        throw core::Error(core::ExitCode::Bus, "systemd on the " +
                                                   ingest::BusSpec{options.bus}.describe() +
                                                   " did not answer: " + source.lastError());
    notify::HttpClient http;
    notify::Dispatcher dispatcher(
        http, clock, [](Priority priority, const std::string& line) { core::log(priority, line); });
    dispatcher.setTargets(std::move(*targets));
    // Alertmanager receivers keep hearing about alerts that fired before this start.
    for (const auto& row : store::firingTriggers(*db))
        if (auto n = notify::decode(row.payload))
            dispatcher.rememberFiring(row.receiver, row.alert_id, std::move(*n));
    Loop loop(options, *db, source, *writer, *sink, *alerting, http, dispatcher, checkpointer,
              *lock, metrics ? &*metrics : nullptr, emit.get());
    return loop.run();
}

}  // namespace cerberus::daemon
