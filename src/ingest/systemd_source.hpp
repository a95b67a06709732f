#pragma once

// Follows every unit of one systemd manager over D-Bus (sdbus-c++ 1.2.0) and turns what it
// sees into transitions. Driven by the caller's event loop: nothing here owns a thread or
// sleeps; reconnecting is the caller's decision (connected() / connect()).

#include <sdbus-c++/sdbus-c++.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::ingest {

// Where the transitions and the latest unit snapshots go (the daemon: the store, later the
// rules). Called on the loop thread, in the order things happened.
class TransitionSink {
public:
    virtual ~TransitionSink() = default;
    virtual void onTransition(core::Transition transition) = 0;
    virtual void onUnit(const core::UnitSnapshot& snapshot) = 0;
    // The manager the snapshots belong to changed (first read, reboot, manager restart).
    virtual void onManager(const std::string& identity) { (void)identity; }
};

// "system", "user", or a D-Bus address such as "unix:path=/run/user/1000/bus".
struct BusSpec {
    std::string bus;
    std::string describe() const;
};

struct SourceStats {
    std::uint64_t signals = 0;
    std::uint64_t stale_dropped = 0;
    std::uint64_t bad_signals = 0;  // signals whose arguments could not be read
    std::uint64_t refreshes = 0;
    std::uint64_t reconciles = 0;  // full re-reads of every unit (start, reconnect, reload)
    std::uint64_t connects = 0;
};

class SystemdSource {
public:
    SystemdSource(BusSpec bus, TransitionSink& sink, const core::Clock& clock);
    ~SystemdSource();
    SystemdSource(const SystemdSource&) = delete;
    SystemdSource& operator=(const SystemdSource&) = delete;

    // Connects, adds the matches and subscribes; the next process() reads every loaded unit
    // and reconciles it against what was known. Throws core::Error(ExitCode::Bus) with one
    // sentence when the bus or systemd is not there.
    void connect();
    // Snapshots persisted by an earlier run, for units not read on this connection yet:
    // reconcile measures what systemd reports against them. `manager` is the identity of
    // the manager they were read from (empty: not recorded). With nothing known, the units
    // read at the first reconcile are a baseline (a first install); once anything is known,
    // a unit never seen before is measured from a new unit's zero, since it was loaded
    // while cerberus was not listening.
    // `last_watched` (wall clock) is when an earlier run last recorded that it watched:
    // what reconcile infers happened between then and now.
    void seed(const std::map<std::string, core::UnitSnapshot>& known, std::string manager = {},
              std::optional<core::Usec> last_watched = std::nullopt);
    bool connected() const { return connection_ != nullptr; }
    // Drops the connection (after a failure); the caller reconnects later.
    void disconnect();

    struct PollData {
        int fd = -1;
        std::uint32_t epoll_events = 0;
        std::optional<core::Usec> deadline_mono;  // sd-bus's own timeout (method calls)
    };
    PollData pollData() const;

    // Handles everything that is pending on the connection. Returns false when the
    // connection was lost (the source is then disconnected). Never throws.
    bool process();

    // Why the last connection ended or the last connect failed (for the caller's log).
    const std::string& lastError() const { return last_error_; }
    std::size_t unitsTracked() const { return units_.size(); }
    const SourceStats& stats() const { return stats_; }

private:
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
    void unloaded(const std::string& name, Tracked& tracked);
    void runDeferred();
    bool drain();

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
    // Since when nothing was watched (wall clock): a stop, a lost bus, a reload. Reconcile
    // rows carry it; cleared once everything was read again. nullopt: not known.
    std::optional<core::Usec> unwatched_since_;
    bool lost_ = false;
    std::string last_error_;
    SourceStats stats_;

    std::unique_ptr<sdbus::IConnection> connection_;
    std::unique_ptr<sdbus::IProxy> manager_;
    std::vector<sdbus::Slot> slots_;
};

}  // namespace cerberus::ingest
