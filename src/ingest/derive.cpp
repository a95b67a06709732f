#include "ingest/derive.hpp"

namespace cerberus::ingest {

namespace {

using core::Event;
using core::Transition;
using core::UnitSnapshot;

bool isActive(std::string_view state) { return state == "active" || state == "reloading"; }

// A run is "up" until its process is gone: deactivating still belongs to the run, so the
// stop/crash decision waits for the final Result.
bool isUp(std::string_view state) { return isActive(state) || state == "deactivating"; }

bool isService(const UnitSnapshot& s) { return s.n_restarts >= 0; }

bool isBadResult(std::string_view result) { return !result.empty() && result != "success"; }

Transition make(const UnitSnapshot& s, Event event, const Stamp& stamp) {
    Transition t;
    t.ts_usec = stamp.ts_usec;
    t.mono_usec = stamp.mono_usec;
    t.unit = s.unit;
    t.event = event;
    t.active_state = s.active_state;
    t.sub_state = s.sub_state;
    t.result = s.result;
    if (s.n_restarts >= 0) t.n_restarts = s.n_restarts;
    t.invocation_id = s.invocation_id;
    if (s.main_pid > 0) t.main_pid = s.main_pid;
    t.source = stamp.source;
    return t;
}

Transition makeRunEnd(const UnitSnapshot& s, const Stamp& stamp) {
    Transition t = make(s, isBadResult(s.result) ? Event::Crash : Event::Stop, stamp);
    if (s.exec_main_code != 0) {
        t.exit_code = std::string(core::exitCodeName(s.exec_main_code));
        t.exit_status = s.exec_main_status;
    }
    return t;
}

// Restarts the manager performed between two snapshots. NRestarts only grows until a
// manual start (or a reload of the unit) resets it to 0; a lower value therefore means
// "reset, then this many new restarts".
std::int64_t restartsBetween(std::int64_t before, std::int64_t after) {
    if (before < 0 || after < 0) return 0;
    return after >= before ? after - before : after;
}

}  // namespace

bool isStale(const UnitSnapshot& known, const PropertyDelta& d) {
    if (d.state_change_mono && *d.state_change_mono < known.state_change_mono) return true;
    if (d.exec_main_start_mono) {
        if (*d.exec_main_start_mono < known.exec_main_start_mono) return true;
        if (*d.exec_main_start_mono == known.exec_main_start_mono && d.n_restarts &&
            known.n_restarts >= 0 && *d.n_restarts < known.n_restarts)
            return true;
    }
    return false;
}

void apply(UnitSnapshot& s, const PropertyDelta& d) {
    if (d.active_state) s.active_state = *d.active_state;
    if (d.sub_state) s.sub_state = *d.sub_state;
    if (d.result) s.result = *d.result;
    if (d.exec_main_code) s.exec_main_code = *d.exec_main_code;
    if (d.exec_main_status) s.exec_main_status = *d.exec_main_status;
    if (d.exec_main_start_mono) s.exec_main_start_mono = *d.exec_main_start_mono;
    if (d.exec_main_exit_mono) s.exec_main_exit_mono = *d.exec_main_exit_mono;
    if (d.state_change_mono) s.state_change_mono = *d.state_change_mono;
    if (d.n_restarts) s.n_restarts = *d.n_restarts;
    if (d.invocation_id) s.invocation_id = *d.invocation_id;
    if (d.main_pid) s.main_pid = *d.main_pid;
}

std::vector<Transition> derive(const UnitSnapshot& b, UnitSnapshot& a, const Stamp& stamp) {
    std::vector<Transition> out;
    if (b.active_state.empty()) {
        // First sighting: whatever ran before is history we did not see. Take it as the
        // baseline so the next change is measured against it.
        a.reported_exit_mono = a.exec_main_exit_mono;
        a.run_ended = !isUp(a.active_state);
        a.in_restart_cycle = a.sub_state == "auto-restart";
        a.gave_up = a.active_state == "failed" && a.result == "start-limit-hit";
        return out;
    }
    a.reported_exit_mono = b.reported_exit_mono;
    a.run_ended = b.run_ended;
    a.in_restart_cycle = b.in_restart_cycle;
    a.gave_up = b.gave_up;

    const bool up_before = isUp(b.active_state);
    const bool up_after = isUp(a.active_state);
    const bool exit_advanced =
        a.exec_main_exit_mono != 0 && a.exec_main_exit_mono != a.reported_exit_mono;

    // 1. The run ended: it left the up states, or (services) a process spawned while the
    // unit was still starting has exited and the unit is not up.
    bool ended = up_before && !up_after;
    if (!ended && isService(a) && !up_after && exit_advanced && a.active_state != "inactive" &&
        !(a.active_state == "activating" && a.sub_state != "auto-restart"))
        ended = true;
    if (ended) {
        out.push_back(makeRunEnd(a, stamp));
        a.reported_exit_mono = a.exec_main_exit_mono;
        a.run_ended = true;
    }

    // 2. Entered failed.
    if (a.active_state == "failed" && b.active_state != "failed")
        out.push_back(make(a, Event::Fail, stamp));

    if (a.sub_state == "auto-restart") a.in_restart_cycle = true;

    // 3. Automatic restarts, one row per increment. A restart whose run end we never saw
    // (states merged under load, or cerberus was not running) still ended a run: store it.
    const std::int64_t restarts = restartsBetween(b.n_restarts, a.n_restarts);
    const std::int64_t first = a.n_restarts - restarts;
    for (std::int64_t i = 0; i < restarts; ++i) {
        if (!a.run_ended) {
            const bool bad = isBadResult(a.result) || isBadResult(b.result);
            Transition end = make(a, bad ? Event::Crash : Event::Stop, stamp);
            end.n_restarts = first + i;
            out.push_back(std::move(end));
        }
        Transition restart = make(a, Event::Restart, stamp);
        restart.n_restarts = first + i + 1;
        out.push_back(std::move(restart));
        a.run_ended = false;
        a.in_restart_cycle = true;
    }

    // 4. Became active, or a new invocation while we thought it never went down.
    const bool new_invocation = !a.invocation_id.empty() && !b.invocation_id.empty() &&
                                a.invocation_id != b.invocation_id;
    if (isActive(a.active_state) && (!up_before || (new_invocation && !ended))) {
        if (up_before && restarts == 0) {
            // A manual restart merged into one snapshot: the old run stopped.
            out.push_back(make(a, Event::Stop, stamp));
        }
        out.push_back(make(a, Event::Start, stamp));
        a.run_ended = false;
    }
    if (isActive(a.active_state)) {
        a.in_restart_cycle = false;
        a.gave_up = false;
    }

    // 5. The manager stopped restarting: the restart was refused (start limit) and the unit
    // rests in failed without a new run having ended. systemd 252 keeps Result=exit-code
    // when the previous run failed, so Result=start-limit-hit alone is not enough.
    if (!a.gave_up && a.active_state == "failed" &&
        (a.result == "start-limit-hit" ||
         (a.in_restart_cycle && !ended && b.active_state != "failed"))) {
        out.push_back(make(a, Event::GiveUp, stamp));
        a.gave_up = true;
        a.in_restart_cycle = false;
    }
    return out;
}

}  // namespace cerberus::ingest
