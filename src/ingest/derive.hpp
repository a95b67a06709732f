#pragma once

// Pure derivation of stored transitions from systemd's property snapshots. No I/O: the
// systemd source feeds it live, reconcile feeds it (persisted snapshot, fresh snapshot).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::ingest {

// The properties of one PropertiesChanged signal (or one GetAll reply): only those present.
struct PropertyDelta {
    std::optional<std::string> active_state;
    std::optional<std::string> sub_state;
    std::optional<std::string> result;
    std::optional<int> exec_main_code;
    std::optional<int> exec_main_status;
    std::optional<core::Usec> exec_main_start_mono;
    std::optional<core::Usec> exec_main_exit_mono;
    std::optional<core::Usec> state_change_mono;
    std::optional<std::int64_t> n_restarts;
    std::optional<std::string> invocation_id;
    std::optional<std::int64_t> main_pid;
};

// True when a live delta is older than what is already known (a signal queued before a
// GetAll reply): applying it would replay the past as if it were new.
bool isStale(const core::UnitSnapshot& known, const PropertyDelta& delta);

// Copies the present properties of `delta` into `snapshot`.
void apply(core::UnitSnapshot& snapshot, const PropertyDelta& delta);

struct Stamp {
    core::Usec ts_usec = 0;
    core::Usec mono_usec = 0;
    core::Source source = core::Source::Systemd;
    // Reconcile: since when nothing was watched (wall clock); nullopt: not known.
    std::optional<core::Usec> unwatched_since_usec;
};

// How a run that ended while nobody watched ended, as the manager logged it
// (ingest/manager_journal.hpp).
struct JournalEnd {
    std::string invocation_id;
    std::string result = "success";  // Service.Result of that run
    std::string exit_code;           // exited, killed, dumped; empty when not logged
    std::optional<int> exit_status;
    // When the manager logged the end (the exit; for a clean one, which it logs no exit of,
    // the restart that followed) and the restart after it, on both clocks; 0: not read.
    core::Usec ended_usec = 0;
    core::Usec ended_mono = 0;
    core::Usec restarted_usec = 0;
    core::Usec restarted_mono = 0;
};
// By restart counter: the run that ended just before automatic restart N.
using JournalEnds = std::map<std::int64_t, JournalEnd>;

// Automatic restarts the manager performed between two readings of NRestarts. It only
// grows until a manual start (or a reload of the unit) resets it to 0; a lower value
// therefore means "reset, then this many new restarts".
std::int64_t restartsBetween(std::int64_t before, std::int64_t after);

// The transitions that take a unit from `before` to `after`, in the order they happened
// (stop/crash, fail, restart, start, give_up). Updates the bookkeeping fields of `after`.
// A `before` with an empty active_state is a first sighting: a baseline, no transitions.
// `journal` tells how runs that ended unseen before a restart ended; a run it does not
// know is guessed (see unseenEndBeforeRestart in derive.cpp). Where it tells every end and
// restart of a reconcile, those rows carry the times the manager logged them at.
std::vector<core::Transition> derive(const core::UnitSnapshot& before, core::UnitSnapshot& after,
                                     const Stamp& stamp, const JournalEnds& journal = {});

}  // namespace cerberus::ingest
