#pragma once

// Follows every unit of one systemd manager over D-Bus (sdbus-c++ 1.2.0) and turns what it
// sees into transitions. Driven by the caller's event loop: nothing here owns a thread or
// sleeps; reconnecting is the caller's decision (connected() / connect()).

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

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
    // Runs of services that ended while nobody watched, found at reconciles: how each ended
    // was read from the manager's journal, or (not there) guessed.
    std::uint64_t unseen_ends_told = 0;
    std::uint64_t unseen_ends_guessed = 0;
};

class SystemdSource {
public:
    SystemdSource(BusSpec bus, TransitionSink& sink, const core::Clock& clock);
    ~SystemdSource();
    SystemdSource(const SystemdSource&) = delete;
    SystemdSource& operator=(const SystemdSource&) = delete;

    // Connects, adds the matches and subscribes; the next process() reads every loaded unit
    // and reconciles it against what was known. nullopt once connected; else one sentence
    // saying why not (the bus or systemd is not there), which start-up ends with
    // ExitCode::Bus and the daemon's loop retries.
    [[nodiscard]] std::optional<std::string> connect();
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
    bool connected() const;
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
    const std::string& lastError() const;
    std::size_t unitsTracked() const;
    const SourceStats& stats() const;

private:
    // Everything that touches sdbus-c++ (the connection, its proxy and match slots) and the
    // per-unit state it feeds, so that users of this header never compile sdbus-c++.
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cerberus::ingest
