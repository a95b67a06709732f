#include "daemon/daemon.hpp"

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/text.hpp"
#include "daemon/alerting.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/log_line.hpp"
#include "daemon/metrics.hpp"
#include "daemon/sources/alert_timer.hpp"
#include "daemon/sources/bus_follower.hpp"
#include "daemon/sources/deliveries.hpp"
#include "daemon/sources/emit_intake.hpp"
#include "daemon/sources/flusher.hpp"
#include "daemon/sources/retention.hpp"
#include "daemon/sources/signals.hpp"
#include "daemon/sources/status.hpp"
#include "daemon/sources/store_sink.hpp"
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

using core::Priority;
using core::Usec;
using core::USEC_PER_SEC;
using detail::logLine;

constexpr Usec SHUTDOWN_FLUSH_USEC = 3 * USEC_PER_SEC;
constexpr Usec SHUTDOWN_DELIVERY_USEC = 3 * USEC_PER_SEC;

using Targets = std::map<std::string, notify::Target>;

// Why rules or receivers cannot be used: every error, each on a line of its own.
struct Refusal {
    std::string errors;
};

// Resolves every receiver's secrets; an error names the receiver, never the value.
std::variant<Targets, Refusal> targetsOf(const rules::RuleSet& rules) {
    auto targets = notify::resolveTargets(rules.receivers, [](const char* name) {
        return static_cast<const char*>(std::getenv(name));
    });
    if (targets.ok()) return std::move(targets.by_name);
    Refusal refusal;
    for (const auto& error : targets.errors) refusal.errors += "\n  " + error;
    return refusal;
}

using RulesInForce = std::pair<rules::RuleSet, Targets>;

// The rules and receivers of the files named by --rules, or every error they hold. Nothing
// a rule or secret file holds may end the loop: whatever escapes the checks refuses the
// reload like an error they report.
std::variant<RulesInForce, Refusal> readRules(const Options& options) {
    try {
        auto loaded = rules::loadRules(options.rules_paths);
        Refusal refusal;
        for (const auto& error : loaded.errors) refusal.errors += "\n  " + error;
        if (!loaded.ok()) return refusal;
        auto targets = targetsOf(loaded.rules);
        if (auto* refused = std::get_if<Refusal>(&targets)) return std::move(*refused);
        return RulesInForce{std::move(loaded.rules), std::get<Targets>(std::move(targets))};
    } catch (const std::exception& e) {
        return Refusal{std::string("\n  ") + e.what()};
    }
}

// Whether the new rules are in force; refused ones leave the current rules in force.
bool reloadRules(const Options& options, Alerting& alerting, notify::Dispatcher& dispatcher,
                 const core::Clock& clock) {
    auto read = readRules(options);
    if (const auto* refused = std::get_if<Refusal>(&read)) {
        logLine(Priority::Err, "reload refused, the current rules stay in force:%s",
                refused->errors.c_str());
        return false;
    }
    auto& [rule_set, targets] = std::get<RulesInForce>(read);
    // The new windows replay the stored history: one it cannot read refuses them too.
    const auto rebuilt = alerting.reload(std::move(rule_set), clock.realtime());
    if (!rebuilt.ok()) {
        logLine(Priority::Err, "reload refused, the current rules stay in force: %s",
                rebuilt.error().c_str());
        return false;
    }
    dispatcher.setTargets(std::move(targets));
    logLine(Priority::Info, "rules reloaded: %s, %s firing",
            core::plural(alerting.ruleCount(), "rule").c_str(),
            core::plural(alerting.firing(), "alert").c_str());
    return true;
}

// The store's side of the daemon, in the order it is made and released in reverse: the
// lock outlives the database's connection.
struct Storage {
    explicit Storage(const std::string& path)
        : lock(store::WriterLock::acquire(path)),
          db(store::Database::open(path, store::OpenMode::ReadWrite)),
          writer(db),
          checkpointer(db) {}
    // One writer per database, before the first write: a second daemon stops here.
    store::WriterLock lock;
    store::Database db;
    store::HistoryWriter writer;
    store::Checkpointer checkpointer;
};

// What the running daemon works with; run() below builds it.
struct Parts {
    const Options& options;
    const core::Clock& clock;
    ingest::SystemdSource& source;
    Storage& storage;
    StoreSink& sink;
    Alerting& alerting;
    notify::HttpClient& http;
    notify::Dispatcher& dispatcher;
    MetricsServer* metrics;    // null without --metrics
    ingest::EmitServer* emit;  // null when the daemon has no emit socket
};

// The running daemon: one event source per concern, woken in this order on one loop.
class Daemon {
public:
    explicit Daemon(const Parts& parts);
    int run();

private:
    void start();
    void reload();
    int stop();
    void committed();

    Parts p_;
    std::string bus_name_;
    EventLoop loop_;
    SystemdBus bus_;
    Signals signals_;
    BusFollower follower_;
    std::optional<EmitIntake> emit_;
    AlertTimer alert_timer_;
    DeliveryLog deliveries_;
    Transfers transfers_;
    Flusher flusher_;
    OutboxFeeder feeder_;
    Retention retention_;
    Heartbeat heartbeat_;
    Watchdog watchdog_;
    StatusPublisher publisher_;
};

Daemon::Daemon(const Parts& parts)
    : p_(parts),
      bus_name_(ingest::BusSpec{parts.options.bus}.describe()),
      loop_(parts.clock),
      bus_(parts.source),
      signals_([this] { loop_.stop(); }, [this] { reload(); }),
      follower_(bus_, bus_name_),
      alert_timer_(parts.alerting, parts.clock, [this] { publisher_.markChanged(); }),
      deliveries_(parts.storage.db, parts.storage.writer, [this] { publisher_.markChanged(); }),
      transfers_(parts.http, parts.dispatcher, deliveries_),
      flusher_(
          parts.storage.db, parts.storage.writer, parts.storage.checkpointer,
          [this](const store::Flushed& flushed) {
              if (flushed.notifications > 0) {
                  feeder_.markStale();
                  deliveries_.outboxChanged();
              }
              deliveries_.countOutbox();
          },
          [this] { committed(); }),
      feeder_(parts.storage.db, parts.dispatcher, deliveries_, parts.clock),
      retention_(parts.storage.db, parts.options.keep_usec, parts.clock),
      heartbeat_(parts.storage.writer),
      watchdog_(watchdogInterval(), sdNotify),
      publisher_({parts.sink, parts.storage.writer, parts.source, parts.alerting, deliveries_,
                  parts.metrics},
                 bus_name_, parts.clock, sdNotify) {
    if (parts.emit) emit_.emplace(*parts.emit, parts.clock);
}

int Daemon::run() {
    loop_.add(signals_);
    loop_.add(follower_);
    if (emit_) loop_.add(*emit_);
    for (EventSource* source :
         std::initializer_list<EventSource*>{&alert_timer_, &transfers_, &flusher_, &feeder_,
                                             &retention_, &heartbeat_, &watchdog_, &publisher_})
        loop_.add(*source);
    start();
    loop_.run();
    return stop();
}

// An emit request is answered once what it delivered is committed.
void Daemon::committed() {
    if (p_.emit) p_.emit->committed();
}

void Daemon::start() {
    // Everything loaded has been read and reconciled by the caller's first process().
    flusher_.flush(p_.clock.monotonic());
    // What start-up decided (rows `cerberus emit` stored while no daemon ran, deadlines that
    // fell due) is delivered now, not at the first wakeup, which an idle host may not bring.
    feeder_.load();
    p_.dispatcher.run();
    logLine(Priority::Info, "following the %s: %s tracked, %s, %s firing, history in '%s'",
            bus_name_.c_str(), core::plural(p_.source.unitsTracked(), "unit").c_str(),
            core::plural(p_.alerting.ruleCount(), "rule").c_str(),
            core::plural(p_.alerting.firing(), "alert").c_str(), p_.storage.db.path().c_str());
    deliveries_.countOutbox();
    publisher_.rulesAccepted(p_.clock.realtime());  // the rules start-up loaded are in force
    publisher_.publish();
    if (p_.metrics) {
        p_.metrics->start();
        logLine(Priority::Info, "serving metrics at http://%s/metrics",
                p_.options.metrics->describe().c_str());
    }
    sdNotify("READY=1");
}

// systemctl waits for READY=1 after RELOADING=1 (what Type=notify-reload does in newer
// systemd), so `systemctl reload` returns once the rules are in force or refused.
void Daemon::reload() {
    sdNotify("RELOADING=1");
    if (reloadRules(p_.options, p_.alerting, p_.dispatcher, p_.clock))
        publisher_.rulesAccepted(p_.clock.realtime());
    else
        publisher_.rulesRefused();
    sdNotify("READY=1");
}

int Daemon::stop() {
    sdNotify("STOPPING=1\nSTATUS=Stopping: finishing deliveries and writes");
    auto& writer = p_.storage.writer;
    // From here a `cerberus emit` that finds no socket appends beside this daemon: the next
    // start evaluates its rows.
    p_.storage.lock.markStopping();
    if (p_.emit) {
        // The clients waiting for their commit are answered before the deliveries' grace
        // time, within theirs.
        p_.emit->stopListening();
        (void)flusher_.drain(p_.clock.monotonic() + SHUTDOWN_FLUSH_USEC, p_.clock);  // see below
    }
    transfers_.drain(p_.clock.monotonic() + SHUTDOWN_DELIVERY_USEC, p_.clock);
    writer.beat();  // the moment this run stopped watching
    (void)flusher_.drain(p_.clock.monotonic() + SHUTDOWN_FLUSH_USEC, p_.clock);  // see below
    // A file deleted while nothing was queued is put back before the connection closes.
    (void)flusher_.ownFile();  // what is still queued is reported below
    if (writer.pending() > 0) {
        logLine(Priority::Err, "stopping with %s not written to '%s'",
                core::plural(writer.pending(), "change").c_str(), p_.storage.db.path().c_str());
        return static_cast<int>(core::ExitCode::Database);
    }
    logLine(Priority::Info, "stopped; %s recorded in this run",
            core::plural(p_.sink.transitions(), "transition").c_str());
    return 0;
}

// Where and for whom the emit socket listens; nullopt for none. Checked before anything is
// written: an unknown group is a usage error.
std::optional<ingest::EmitSocketOptions> emitOptions(const Options& options) {
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
std::unique_ptr<ingest::EmitServer> listenForEmit(const Options& options,
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
void raiseOpenFilesLimit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur >= limit.rlim_max) return;
    const rlim_t wanted = limit.rlim_max;
    limit.rlim_cur = wanted;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
        logLine(Priority::Warning, "cannot raise the open files limit to %llu: %s, ignoring",
                static_cast<unsigned long long>(wanted), std::strerror(errno));
}

std::string hostName() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

// glibc gives the top of the heap back to the kernel once 128 KiB are free there, and each
// commit frees and takes back about that much: every alert's commit then paid for a brk()
// and the page faults of fresh memory (measured: 2 rows took 430 us to insert, 50 us with
// this). A few MiB kept instead cost nothing on a daemon's footprint.
void keepHeapTop() {
    // Both return 0 only for an unknown parameter; then glibc's defaults stay.
    (void)mallopt(M_TRIM_THRESHOLD, 4 << 20);
    (void)mallopt(M_TOP_PAD, 1 << 20);
}

// What start-up reads and checks before anything is written.
struct Config {
    rules::RuleSet rules;
    Targets targets;
    std::optional<MetricsServer> metrics;
    std::optional<ingest::EmitSocketOptions> emit;
};

void checkConfig(const Options& options, Config& config) {
    config.rules = loadRulesOrThrow(options.rules_paths);
    auto targets = targetsOf(config.rules);
    if (const auto* refused = std::get_if<Refusal>(&targets))
        throw core::Error(core::ExitCode::Failure, "the receivers are unusable:" + refused->errors);
    config.targets = std::get<Targets>(std::move(targets));
    // Bound first: a port in use stops the start-up before anything is written.
    if (options.metrics) config.metrics.emplace(*options.metrics);
}

// The sink needs the writer, the writer the database, and the database comes after the
// bus check; a small trampoline sink lets the source exist first.
class Deferred final : public ingest::TransitionSink {
public:
    ingest::TransitionSink* target = nullptr;
    void onTransition(core::Transition t) override { target->onTransition(std::move(t)); }
    void onUnit(const core::UnitSnapshot& s) override { target->onUnit(s); }
    void onManager(const std::string& identity) override { target->onManager(identity); }
};

void warnUnreadableJournal(const Options& options) {
    if (options.bus == "system" && !notify::systemJournalReadable())
        logLine(Priority::Warning,
                "cannot read the system journal: alerts will carry no journal lines, and how runs "
                "ended while cerberus was not watching will be guessed; run cerberus "
                "in the systemd-journal group (SupplementaryGroups=systemd-journal in its unit) "
                "or as root");
}

// Windows first, from the stored history; then what systemd reports now.
void catchUp(const Options& options, const core::Clock& clock, ingest::SystemdSource& source,
             Deferred& deferred, StoreSink& sink, Alerting& alerting, Storage& storage) {
    alerting.start(clock.realtime());
    deferred.target = &sink;
    source.seed(store::loadUnits(storage.db), store::loadManager(storage.db),
                store::lastWatched(storage.db));
    storage.writer.keepHeartbeat();
    if (!source.process())
        throw core::Error(core::ExitCode::Bus, "systemd on the " +
                                                   ingest::BusSpec{options.bus}.describe() +
                                                   " did not answer: " + source.lastError());
}

// Alertmanager receivers keep hearing about alerts that fired before this start.
void rememberFiring(notify::Dispatcher& dispatcher, store::Database& db) {
    for (const auto& row : store::firingTriggers(db))
        if (auto n = notify::decode(row.payload))
            dispatcher.rememberFiring(row.receiver, row.alert_id, std::move(*n));
}

void logToStderr(Priority priority, const std::string& line) { core::log(priority, line); }

}  // namespace

int run(const Options& options) {
    keepHeapTop();
    // A peer that closes its end (an emit client, a metrics scraper, a receiver) is an
    // error on that write, not the end of the daemon. SIG_ERR only for a bad signal number.
    (void)signal(SIGPIPE, SIG_IGN);
    raiseOpenFilesLimit();
    core::SystemClock clock;
    Config config;
    checkConfig(options, config);
    // Nothing is written before the bus answers: a wrong --bus leaves no database behind.
    // Declared first, released last.
    std::optional<Storage> storage;
    std::optional<Alerting> alerting;
    std::optional<StoreSink> sink;
    Deferred deferred;
    ingest::SystemdSource source(ingest::BusSpec{options.bus}, deferred, clock);
    if (auto failure = source.connect()) throw core::Error(core::ExitCode::Bus, *failure);
    // After the bus: without a user manager, its sentence is the only one.
    config.emit = emitOptions(options);
    storage.emplace(options.db_path);
    notify::JournalReader journal;
    warnUnreadableJournal(options);
    alerting.emplace(std::move(config.rules), storage->db, storage->writer, hostName(), &journal);
    sink.emplace(storage->writer, *alerting);
    // Listening before the catch-up: a `cerberus emit` from now on talks to the daemon
    // instead of appending rows that this start would not see.
    std::unique_ptr<ingest::EmitServer> emit;
    if (config.emit) emit = listenForEmit(options, std::move(*config.emit), storage->db, *sink);
    catchUp(options, clock, source, deferred, *sink, *alerting, *storage);
    notify::HttpClient http;
    notify::Dispatcher dispatcher(http, clock, logToStderr);
    dispatcher.setTargets(std::move(config.targets));
    rememberFiring(dispatcher, storage->db);
    MetricsServer* metrics = config.metrics ? &*config.metrics : nullptr;
    Daemon daemon({options, clock, source, *storage, *sink, *alerting, http, dispatcher, metrics,
                   emit.get()});
    return daemon.run();
}

}  // namespace cerberus::daemon
