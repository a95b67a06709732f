#include "ingest/systemd_source.hpp"

#include <poll.h>
#include <pwd.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include "ingest/derive.hpp"
#include "ingest/manager_journal.hpp"
#include "ingest/unit_path.hpp"

namespace cerberus::ingest {

namespace {

constexpr const char* SYSTEMD_NAME = "org.freedesktop.systemd1";
constexpr const char* MANAGER_PATH = "/org/freedesktop/systemd1";
constexpr const char* MANAGER_IFACE = "org.freedesktop.systemd1.Manager";
constexpr const char* UNIT_IFACE = "org.freedesktop.systemd1.Unit";
constexpr const char* SERVICE_IFACE = "org.freedesktop.systemd1.Service";
constexpr const char* PROPERTIES_IFACE = "org.freedesktop.DBus.Properties";
constexpr std::uint64_t CALL_TIMEOUT_USEC = 10 * core::USEC_PER_SEC;
// Deferred work (GetAll after UnitNew, re-lists) is done in rounds between drains; more
// rounds than this in one process() call are left for the next wakeup.
constexpr int MAX_ROUNDS_PER_PROCESS = 16;

using Properties = std::map<std::string, sdbus::Variant>;

template <typename T>
std::optional<T> take(const Properties& props, const char* key) {
    const auto it = props.find(key);
    if (it == props.end() || !it->second.template containsValueOfType<T>()) return std::nullopt;
    return it->second.template get<T>();
}

std::string hex(const std::vector<std::uint8_t>& bytes) {
    static constexpr char DIGITS[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (const auto b : bytes) {
        out.push_back(DIGITS[b >> 4]);
        out.push_back(DIGITS[b & 0xf]);
    }
    return out;
}

// Adds the properties derivation needs, from either interface, to `out`. Absent ones stay
// as they were.
void readProperties(const Properties& props, PropertyDelta& out) {
    if (auto v = take<std::string>(props, "ActiveState")) out.active_state = std::move(*v);
    if (auto v = take<std::string>(props, "SubState")) out.sub_state = std::move(*v);
    if (auto v = take<std::uint64_t>(props, "StateChangeTimestampMonotonic"))
        out.state_change_mono = static_cast<core::Usec>(*v);
    if (auto v = take<std::vector<std::uint8_t>>(props, "InvocationID"))
        out.invocation_id = hex(*v);
    if (auto v = take<std::string>(props, "Result")) out.result = std::move(*v);
    if (auto v = take<std::uint32_t>(props, "NRestarts")) out.n_restarts = *v;
    if (auto v = take<std::int32_t>(props, "ExecMainCode")) out.exec_main_code = *v;
    if (auto v = take<std::int32_t>(props, "ExecMainStatus")) out.exec_main_status = *v;
    if (auto v = take<std::uint64_t>(props, "ExecMainStartTimestampMonotonic"))
        out.exec_main_start_mono = static_cast<core::Usec>(*v);
    if (auto v = take<std::uint64_t>(props, "ExecMainExitTimestampMonotonic"))
        out.exec_main_exit_mono = static_cast<core::Usec>(*v);
    if (auto v = take<std::uint32_t>(props, "MainPID")) out.main_pid = *v;
}

bool isWatchedProperty(const std::string& name) {
    static const std::set<std::string> WATCHED{"ActiveState",
                                               "SubState",
                                               "StateChangeTimestampMonotonic",
                                               "InvocationID",
                                               "Result",
                                               "NRestarts",
                                               "ExecMainCode",
                                               "ExecMainStatus",
                                               "ExecMainStartTimestampMonotonic",
                                               "ExecMainExitTimestampMonotonic",
                                               "MainPID"};
    return WATCHED.count(name) > 0;
}

bool isGoneError(const sdbus::Error& e) {
    const auto& n = e.getName();
    return n == "org.freedesktop.systemd1.NoSuchUnit" ||
           n == "org.freedesktop.DBus.Error.UnknownObject" ||
           n == "org.freedesktop.DBus.Error.UnknownInterface" ||
           n == "org.freedesktop.DBus.Error.UnknownMethod";
}

// sdbus-c++ 1.2.0 does not expose a message's cookie; its sd_bus_message is a protected
// member, reachable through a pointer to member formed in a derived class.
struct MessageAccess : sdbus::Message {
    static sd_bus_message* raw(const sdbus::Message& msg) {
        constexpr auto MSG = &MessageAccess::msg_;
        return static_cast<sd_bus_message*>(msg.*MSG);
    }
};

std::uint64_t cookieOf(const sdbus::Message& msg) {
    std::uint64_t cookie = 0;
    if (sd_bus_message_get_cookie(MessageAccess::raw(msg), &cookie) < 0) return 0;
    return cookie;
}

// True when `msg` was sent before the reply marked by `read`, on the same connection.
bool sentBefore(const std::string& sender, std::uint64_t cookie, const std::string& read_sender,
                std::uint64_t read_cookie) {
    return read_cookie != 0 && cookie != 0 && sender == read_sender && cookie < read_cookie;
}

bool endsWith(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// What a unit is the moment systemd loads it: inactive, nothing run, no restarts.
core::UnitSnapshot loadedBaseline(const std::string& name) {
    core::UnitSnapshot s;
    s.unit = name;
    s.active_state = "inactive";
    s.sub_state = "dead";
    s.run_ended = true;  // no run is open
    if (endsWith(name, ".service")) s.n_restarts = 0;
    return s;
}

std::string bootId() {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;
}

// The unit cerberus itself runs in, so that it never records its own restarts.
std::string findOwnUnit(const std::string& bus) {
    char* unit = nullptr;
    int r = bus == "system" ? sd_pid_get_unit(0, &unit) : sd_pid_get_user_unit(0, &unit);
    if (r < 0 && bus != "system" && bus != "user") r = sd_pid_get_unit(0, &unit);
    std::string out;
    if (r >= 0 && unit) out = unit;
    std::free(unit);
    return out;
}

// Why there is no user bus to open, in one sentence with the fix, or empty when the user
// bus is there (or its address was given): sd-bus alone says "No medium found" for an unset
// XDG_RUNTIME_DIR and "No such file or directory" for a missing socket.
std::string noUserManager() {
    const char* address = std::getenv("DBUS_SESSION_BUS_ADDRESS");
    if (address != nullptr && *address != '\0') return {};
    const uid_t uid = geteuid();
    std::string user = std::to_string(uid);
    if (const passwd* pw = getpwuid(uid); pw != nullptr && pw->pw_name != nullptr)
        user = pw->pw_name;
    const std::string fix =
        "; run as root to follow the system manager, or start a user "
        "manager and run in its session (loginctl enable-linger " +
        user + "), or pass --bus ADDRESS";
    const std::string who = "no systemd user manager for uid " + std::to_string(uid) + ": ";
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (runtime == nullptr || *runtime == '\0')
        return who + "XDG_RUNTIME_DIR is not set, so there is no user bus" + fix;
    const std::string bus = std::string(runtime) + "/bus";
    struct stat st {};
    if (::stat(bus.c_str(), &st) != 0) return who + "its bus " + bus + " does not exist" + fix;
    return {};
}

}  // namespace

std::string BusSpec::describe() const {
    if (bus == "system") return "system bus";
    if (bus == "user") return "user bus";
    return "bus at '" + bus + "'";
}

struct SystemdSource::Impl {
    Impl(BusSpec bus, TransitionSink& sink, const core::Clock& clock);
    ~Impl() { disconnect(); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    void seed(const std::map<std::string, core::UnitSnapshot>& known, std::string manager,
              std::optional<core::Usec> last_watched);
    std::optional<std::string> connect();
    void disconnect();
    PollData pollData() const;
    bool process();

    // Where a GetAll reply stands in systemd's own message order (sender, cookie), so that
    // signals systemd sent before that reply, still queued here, are known to be older.
    struct ReadMark {
        std::string sender;
        std::uint64_t cookie = 0;
    };
    struct Tracked {
        core::UnitSnapshot snapshot;
        bool fresh = false;  // read with GetAll on this connection
        ReadMark unit_read;
        ReadMark service_read;
    };

    void addMatches();
    void subscribe();
    void reconcileAll(core::Source source);
    void refresh(const std::string& unit, core::Source source);
    void onPropertiesChanged(sdbus::Message& msg);
    void onManagerSignal(sdbus::Message& msg);
    void update(Tracked& tracked, core::UnitSnapshot after, core::Source source);
    void checkManager();
    pid_t managerPid();
    void countUnseenEnds(const std::vector<core::Transition>& rows, const JournalEnds& logged);
    JournalEnds loggedEnds(const core::UnitSnapshot& before, const core::UnitSnapshot& after,
                           core::Source source);
    void unloaded(const std::string& name, Tracked& tracked);
    void runDeferred();
    bool drain();

    // NOLINTBEGIN(readability-identifier-naming): the class's state under the names it had
    // before it moved behind the pimpl; Impl is a struct only so the class can reach it.
    BusSpec bus_;
    TransitionSink& sink_;
    const core::Clock& clock_;
    std::string own_unit_;
    std::unordered_map<std::string, Tracked> units_;
    std::set<std::string> deferred_refresh_;
    bool deferred_reconcile_ = false;
    // Between Reloading(true) and Reloading(false) (daemon-reload, daemon-reexec) systemd
    // announces every unit as removed and new again; their state and counters carry over.
    bool reloading_ = false;
    // Something was watched before: a unit seen for the first time was loaded unwatched.
    bool watched_before_ = false;
    std::string manager_identity_;  // of the manager the snapshots belong to
    pid_t manager_pid_ = 0;         // read at each reconcile; 0: not known
    // How runs that ended unseen ended, for reconcile.
    ManagerJournal journal_;
    // Since when nothing was watched (wall clock): a stop, a lost bus, a reload. Reconcile
    // rows carry it; cleared once everything was read again. nullopt: not known.
    std::optional<core::Usec> unwatched_since_;
    bool lost_ = false;
    std::string last_error_;
    SourceStats stats_;

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
    std::vector<sdbus::Slot> slots_;
    // NOLINTEND(readability-identifier-naming)
};

SystemdSource::SystemdSource(BusSpec bus, TransitionSink& sink, const core::Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(bus), sink, clock)) {}

SystemdSource::~SystemdSource() = default;

std::optional<std::string> SystemdSource::connect() { return impl_->connect(); }

void SystemdSource::seed(const std::map<std::string, core::UnitSnapshot>& known,
                         std::string manager, std::optional<core::Usec> last_watched) {
    impl_->seed(known, std::move(manager), last_watched);
}

bool SystemdSource::connected() const { return impl_->connection_ != nullptr; }
void SystemdSource::disconnect() { impl_->disconnect(); }
SystemdSource::PollData SystemdSource::pollData() const { return impl_->pollData(); }
bool SystemdSource::process() { return impl_->process(); }
const std::string& SystemdSource::lastError() const { return impl_->last_error_; }
std::size_t SystemdSource::unitsTracked() const { return impl_->units_.size(); }
const SourceStats& SystemdSource::stats() const { return impl_->stats_; }

SystemdSource::Impl::Impl(BusSpec bus, TransitionSink& sink, const core::Clock& clock)
    : bus_(std::move(bus)), sink_(sink), clock_(clock), own_unit_(findOwnUnit(bus_.bus)) {}

void SystemdSource::Impl::seed(const std::map<std::string, core::UnitSnapshot>& known,
                               std::string manager, std::optional<core::Usec> last_watched) {
    unwatched_since_ = last_watched;
    for (const auto& [name, snapshot] : known) {
        Tracked& tracked = units_[name];
        if (!tracked.fresh) tracked.snapshot = snapshot;
    }
    if (!known.empty() || !manager.empty()) watched_before_ = true;
    if (manager_identity_.empty()) manager_identity_ = std::move(manager);
}

std::optional<std::string> SystemdSource::Impl::connect() {
    disconnect();
    lost_ = false;
    last_error_.clear();
    try {
        if (bus_.bus == "system")
            connection_ = sdbus::createSystemBusConnection();
        else if (bus_.bus == "user")
            connection_ = sdbus::createSessionBusConnection();
        else
            connection_ = sdbus::createSessionBusConnectionWithAddress(bus_.bus);
        connection_->setMethodCallTimeout(CALL_TIMEOUT_USEC);
        manager_ = sdbus::createProxy(*connection_, SYSTEMD_NAME, MANAGER_PATH);
        addMatches();
        subscribe();
        // Signals queue up in sd-bus from here on; the first process() reads every unit
        // and then applies them, so nothing between subscribe and the read is lost.
        deferred_reconcile_ = true;
        ++stats_.connects;
        return std::nullopt;
    } catch (const sdbus::Error& e) {
        last_error_ = e.getMessage().empty() ? e.getName() : e.getMessage();
        disconnect();
        if (bus_.bus == "user") {
            if (auto missing = noUserManager(); !missing.empty()) return missing;
        }
        std::string why = last_error_;
        if (e.getName() == "org.freedesktop.DBus.Error.ServiceUnknown" ||
            e.getName() == "org.freedesktop.DBus.Error.NameHasNoOwner")
            why = "systemd is not on that bus";
        return "cannot follow systemd on the " + bus_.describe() + ": " + why +
               "; check that the bus is running or pass --bus";
    }
}

void SystemdSource::Impl::disconnect() {
    slots_.clear();
    manager_.reset();
    connection_.reset();
    deferred_refresh_.clear();
    deferred_reconcile_ = false;
    reloading_ = false;
    for (auto& [name, tracked] : units_) tracked.fresh = false;
}

void SystemdSource::Impl::addMatches() {
    auto guarded = [this](void (Impl::*handler)(sdbus::Message&)) {
        return [this, handler](sdbus::Message& msg) {
            // sdbus-c++ lets nothing escape a match handler safely: catch it all here.
            try {
                ++stats_.signals;
                (this->*handler)(msg);
            } catch (const std::exception&) {
                ++stats_.bad_signals;
            }
        };
    };
    slots_.push_back(connection_->addMatch(
        std::string("type='signal',sender='") + SYSTEMD_NAME + "',interface='" + PROPERTIES_IFACE +
            "',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/unit'",
        guarded(&Impl::onPropertiesChanged)));
    slots_.push_back(connection_->addMatch(std::string("type='signal',sender='") + SYSTEMD_NAME +
                                               "',interface='" + MANAGER_IFACE + "',path='" +
                                               MANAGER_PATH + "'",
                                           guarded(&Impl::onManagerSignal)));
    slots_.push_back(connection_->addMatch(
        std::string("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop."
                    "DBus',member='NameOwnerChanged',arg0='") +
            SYSTEMD_NAME + "'",
        guarded(&Impl::onManagerSignal)));
    slots_.push_back(connection_->addMatch(
        "type='signal',sender='org.freedesktop.DBus.Local',interface='org.freedesktop.DBus."
        "Local',member='Disconnected'",
        [this](sdbus::Message&) { lost_ = true; }));
}

void SystemdSource::Impl::subscribe() {
    try {
        manager_->callMethod("Subscribe").onInterface(MANAGER_IFACE);
    } catch (const sdbus::Error& e) {
        // A re-subscribe after systemd came back: the subscription survived.
        if (e.getName() != "org.freedesktop.systemd1.AlreadySubscribed") throw;
    }
}

void SystemdSource::Impl::reconcileAll(core::Source source) {
    using UnitRow =
        sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                      sdbus::ObjectPath, std::uint32_t, std::string, sdbus::ObjectPath>;
    checkManager();
    manager_pid_ = managerPid();
    journal_.beginReconcile();
    std::vector<UnitRow> rows;
    manager_->callMethod("ListUnits").onInterface(MANAGER_IFACE).storeResultsTo(rows);
    std::set<std::string> listed;
    for (const auto& row : rows) listed.insert(row.get<0>());
    for (auto& [name, tracked] : units_)
        if (!listed.count(name)) unloaded(name, tracked);
    deferred_refresh_.clear();
    deferred_reconcile_ = false;
    for (const auto& name : listed) {
        if (name == own_unit_) continue;
        refresh(name, source);
    }
    journal_.endReconcile();
    watched_before_ = true;
    if (!reloading_) unwatched_since_.reset();
    ++stats_.reconciles;
}

// A manager other than the one the snapshots were read from (a reboot, a restarted user
// manager) counts every unit from a new unit's zero: what the old one counted is gone.
void SystemdSource::Impl::checkManager() {
    std::uint64_t started = 0;
    try {
        const sdbus::Variant value =
            manager_->getProperty("UserspaceTimestampMonotonic").onInterface(MANAGER_IFACE);
        started = value.get<std::uint64_t>();
    } catch (const sdbus::Error& e) {
        if (e.getName() != "org.freedesktop.DBus.Error.UnknownProperty" &&
            e.getName() != "org.freedesktop.DBus.Error.InvalidArgs")
            throw;
    }
    const std::string boot = bootId();
    if (boot.empty() || started == 0) return;  // nothing to tell managers apart by
    const std::string identity = boot + "/" + std::to_string(started);
    if (identity == manager_identity_) return;
    if (!manager_identity_.empty()) {
        for (auto& [name, tracked] : units_) {
            tracked.fresh = false;
            if (tracked.snapshot.active_state.empty()) continue;
            tracked.snapshot = loadedBaseline(name);
            sink_.onUnit(tracked.snapshot);
        }
    }
    manager_identity_ = identity;
    sink_.onManager(identity);
}

// The manager's PID, whose journal messages tell how unseen runs ended. 0 when the bus
// does not say (then nothing is read from the journal).
pid_t SystemdSource::Impl::managerPid() {
    try {
        auto bus =
            sdbus::createProxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
        std::uint32_t pid = 0;
        bus->callMethod("GetConnectionUnixProcessID")
            .onInterface("org.freedesktop.DBus")
            .withArguments(std::string(SYSTEMD_NAME))
            .storeResultsTo(pid);
        return static_cast<pid_t>(pid);
    } catch (const sdbus::Error&) {
        return 0;
    }
}

// Read at a reconcile only, and only for a service that restarted unwatched: the journal
// tells how the runs before those restarts ended.
JournalEnds SystemdSource::Impl::loggedEnds(const core::UnitSnapshot& before,
                                            const core::UnitSnapshot& after, core::Source source) {
    if (source != core::Source::Reconcile || before.active_state.empty()) return {};
    const std::int64_t restarts = restartsBetween(before.n_restarts, after.n_restarts);
    if (restarts <= 0) return {};
    return journal_.endsBefore(after.unit, after.n_restarts - restarts + 1, after.n_restarts,
                               manager_pid_, unwatched_since_);
}

// A service's reconcile end without a Result is a guess (a seen end has its unit's Result);
// one with the InvocationID and Result of a journal entry was told.
void SystemdSource::Impl::countUnseenEnds(const std::vector<core::Transition>& rows,
                                          const JournalEnds& logged) {
    for (const auto& t : rows) {
        if ((t.event != core::Event::Stop && t.event != core::Event::Crash) ||
            !endsWith(t.unit, ".service"))
            continue;
        const bool told = std::any_of(logged.begin(), logged.end(), [&t](const auto& entry) {
            return !t.invocation_id.empty() && entry.second.invocation_id == t.invocation_id &&
                   entry.second.result == t.result;
        });
        if (told)
            ++stats_.unseen_ends_told;
        else if (t.result.empty())
            ++stats_.unseen_ends_guessed;
    }
}

// The unit is no longer loaded: when systemd loads it again, its counters start at zero.
// Outside a reload only; a reload announces every unit as removed and then new again.
void SystemdSource::Impl::unloaded(const std::string& name, Tracked& tracked) {
    tracked.fresh = false;
    if (reloading_ || tracked.snapshot.active_state.empty()) return;
    auto baseline = loadedBaseline(name);
    if (tracked.snapshot == baseline) return;
    tracked.snapshot = std::move(baseline);
    sink_.onUnit(tracked.snapshot);
}

void SystemdSource::Impl::refresh(const std::string& name, core::Source source) {
    if (name == own_unit_) return;
    PropertyDelta delta;
    ReadMark unit_mark, service_mark;
    try {
        auto proxy = sdbus::createProxy(*connection_, SYSTEMD_NAME, unitObjectPath(name));
        auto read = [&](const char* iface, ReadMark& mark_out) {
            auto call = proxy->createMethodCall(PROPERTIES_IFACE, "GetAll");
            call << std::string(iface);
            auto reply = proxy->callMethod(call, CALL_TIMEOUT_USEC);
            Properties props;
            reply >> props;
            readProperties(props, delta);
            mark_out = ReadMark{reply.getSender(), cookieOf(reply)};
        };
        if (endsWith(name, ".service")) {
            // Both interfaces in one reply (GetAll of ""), so both show the same moment. Read
            // one after the other, a run that started and crashed between the two replies
            // showed its exit with the previous run's InvocationID, and the live signals of
            // that same run were then stored again.
            read("", unit_mark);
            service_mark = unit_mark;
        } else {
            // Only the Unit interface: the Result of a socket, mount or timer is not a run's.
            read(UNIT_IFACE, unit_mark);
        }
    } catch (const sdbus::Error& e) {
        if (!isGoneError(e)) throw;
        // Unloaded between the signal and our question: nothing to read, nothing lost,
        // since NRestarts of a reloaded unit starts again from 0.
        if (auto it = units_.find(name); it != units_.end()) it->second.fresh = false;
        return;
    }
    ++stats_.refreshes;
    Tracked& tracked = units_[name];
    if (tracked.snapshot.active_state.empty() &&
        (source == core::Source::Systemd || watched_before_)) {
        // Loaded while we were listening, or while we were not but had been before: it was
        // inactive, with no restarts, when it was loaded. Measuring from there keeps the
        // first start (or crash) of a new unit, and the restarts nobody watched. Only a
        // first start on a new database takes what it finds as a baseline.
        tracked.snapshot = loadedBaseline(name);
    }
    const auto& known = tracked.snapshot;
    const bool never_ran = known.active_state == "inactive" && known.exec_main_start_mono == 0 &&
                           known.invocation_id.empty() && known.n_restarts <= 0;
    if (source == core::Source::Reconcile && delta.n_restarts && *delta.n_restarts > 0 &&
        never_ran) {
        // Started and restarted since we last read it, unwatched: the run before the first
        // restart ended unseen too.
        tracked.snapshot.run_ended = false;
    }
    tracked.unit_read = unit_mark;
    tracked.service_read = service_mark;
    core::UnitSnapshot after = tracked.snapshot;
    after.unit = name;
    apply(after, delta);
    update(tracked, std::move(after), source);
    tracked.fresh = true;
}

void SystemdSource::Impl::onPropertiesChanged(sdbus::Message& msg) {
    const auto name = unitNameFromPath(msg.getPath());
    if (!name || *name == own_unit_) return;
    std::string iface;
    Properties changed;
    std::vector<std::string> invalidated;
    msg >> iface >> changed >> invalidated;
    if (iface != UNIT_IFACE && iface != SERVICE_IFACE) return;

    auto it = units_.find(*name);
    if (it == units_.end() || !it->second.fresh) {
        // Not read on this connection yet: its full state comes with the GetAll.
        deferred_refresh_.insert(*name);
        return;
    }
    for (const auto& property : invalidated) {
        if (isWatchedProperty(property)) {
            deferred_refresh_.insert(*name);
            break;
        }
    }
    Tracked& tracked = it->second;
    const ReadMark& read = iface == UNIT_IFACE ? tracked.unit_read : tracked.service_read;
    if (sentBefore(msg.getSender(), cookieOf(msg), read.sender, read.cookie)) {
        // systemd sent this before the reply we already applied: it is the past.
        ++stats_.stale_dropped;
        return;
    }
    PropertyDelta delta;
    readProperties(changed, delta);
    if (isStale(tracked.snapshot, delta)) {
        ++stats_.stale_dropped;
        return;
    }
    core::UnitSnapshot after = tracked.snapshot;
    apply(after, delta);
    update(tracked, std::move(after), core::Source::Systemd);
}

void SystemdSource::Impl::onManagerSignal(sdbus::Message& msg) {
    const std::string member = msg.getMemberName();
    if (member == "UnitNew") {
        std::string id;
        sdbus::ObjectPath path;
        msg >> id >> path;
        if (id == own_unit_) return;
        Tracked& tracked = units_[id];
        // A reload announces every loaded unit again, with its state and counters intact;
        // a unit still loaded in our view, or read after it was loaded, is not new either.
        if (!tracked.snapshot.active_state.empty() && (reloading_ || tracked.fresh)) return;
        // Just loaded: inactive, nothing run, no restarts. Every change from here on comes as
        // a signal, in order, so the unit's whole history is seen, even under load.
        tracked = Tracked{};
        tracked.snapshot = loadedBaseline(id);
        tracked.fresh = true;
    } else if (member == "UnitRemoved") {
        std::string id;
        sdbus::ObjectPath path;
        msg >> id >> path;
        if (auto it = units_.find(id); it != units_.end()) unloaded(id, it->second);
    } else if (member == "JobRemoved") {
        std::uint32_t job_id = 0;
        sdbus::ObjectPath job;
        std::string unit, result;
        msg >> job_id >> job >> unit >> result;
        // A job that did not end "done" (a refused restart, a failed start) is where merged
        // signals would hide a state: read the unit again to be sure.
        if (result != "done" && unit != own_unit_) deferred_refresh_.insert(unit);
    } else if (member == "Reloading") {
        bool reloading = false;
        msg >> reloading;
        reloading_ = reloading;
        if (reloading && !unwatched_since_) unwatched_since_ = clock_.realtime();
        // Read everything again: what changed across the reload is derived from there.
        if (!reloading) deferred_reconcile_ = true;
    } else if (member == "NameOwnerChanged") {
        std::string name, old_owner, new_owner;
        msg >> name >> old_owner >> new_owner;
        // systemd re-executed (or restarted) and is back on the bus: make sure we are
        // subscribed and read everything again.
        // A re-exec hands the name over in the middle of its reload: its Reloading(false)
        // comes next, and one re-read is enough.
        if (!new_owner.empty() && !reloading_) deferred_reconcile_ = true;
        // Gone without a hand-over (a re-exec hands the name over directly): whatever
        // comes next is a new manager, not the end of a reload.
        if (new_owner.empty()) reloading_ = false;
    }
}

void SystemdSource::Impl::update(Tracked& tracked, core::UnitSnapshot after, core::Source source) {
    const Stamp stamp{clock_.realtime(), clock_.monotonic(), source, unwatched_since_};
    const JournalEnds logged = loggedEnds(tracked.snapshot, after, source);
    auto transitions = derive(tracked.snapshot, after, stamp, logged);
    if (source == core::Source::Reconcile) countUnseenEnds(transitions, logged);
    for (auto& t : transitions) sink_.onTransition(std::move(t));
    if (!(after == tracked.snapshot)) {
        tracked.snapshot = std::move(after);
        sink_.onUnit(tracked.snapshot);
    }
}

bool SystemdSource::Impl::drain() {
    while (!lost_ && connection_->processPendingRequest()) {
    }
    return !lost_;
}

void SystemdSource::Impl::runDeferred() {
    if (deferred_reconcile_) {
        subscribe();
        reconcileAll(core::Source::Reconcile);
        return;
    }
    auto names = std::exchange(deferred_refresh_, {});
    for (const auto& name : names) refresh(name, core::Source::Systemd);
}

bool SystemdSource::Impl::process() {
    if (!connection_) return false;
    try {
        drain();
        for (int round = 0; round < MAX_ROUNDS_PER_PROCESS && !lost_ &&
                            (deferred_reconcile_ || !deferred_refresh_.empty());
             ++round) {
            runDeferred();
            drain();
        }
    } catch (const sdbus::Error& e) {
        last_error_ = e.getMessage().empty() ? e.getName() : e.getMessage();
        lost_ = true;
    }
    if (lost_) {
        if (last_error_.empty()) last_error_ = "the bus connection was closed";
        if (!unwatched_since_) unwatched_since_ = clock_.realtime();
        disconnect();
        return false;
    }
    return true;
}

SystemdSource::PollData SystemdSource::Impl::pollData() const {
    PollData out;
    if (!connection_) return out;
    sdbus::IConnection::PollData data{};
    try {
        data = connection_->getEventLoopPollData();
    } catch (const sdbus::Error&) {
        out.deadline_mono = 0;  // process() will find out what is wrong
        return out;
    }
    out.fd = data.fd;
    if (data.events & POLLIN) out.epoll_events |= EPOLLIN;
    if (data.events & POLLOUT) out.epoll_events |= EPOLLOUT;
    if (data.timeout_usec != UINT64_MAX)
        out.deadline_mono = static_cast<core::Usec>(data.timeout_usec);
    if (deferred_reconcile_ || !deferred_refresh_.empty()) out.deadline_mono = 0;
    return out;
}

}  // namespace cerberus::ingest
