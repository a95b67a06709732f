#include "ingest/derive.hpp"

#include <set>
#include <utility>

namespace cerberus::ingest {

namespace {

using core::Event;
using core::Transition;
using core::UnitSnapshot;
using core::Usec;

bool isActive(std::string_view state) { return state == "active" || state == "reloading"; }

// A run is "up" until its process is gone: deactivating still belongs to the run, so the
// stop/crash decision waits for the final Result.
bool isUp(std::string_view state) { return isActive(state) || state == "deactivating"; }

// The manager is done with the run, or waits to restart it. A process that exits while the
// unit is still starting is not final yet (Type=oneshot exits there on success).
bool atRest(const UnitSnapshot& s) {
    if (isUp(s.active_state)) return false;
    return s.active_state != "activating" || s.sub_state == "auto-restart";
}

// A process of this unit may still run: first sightings must not lose its end. systemd 252
// shows the new process of a restart while the unit still reads inactive/dead.
bool hasOpenRun(const UnitSnapshot& s) { return isUp(s.active_state) || s.main_pid > 0; }

// How long after a run's exit a unit found resting in failed must have entered that state for
// its last restart to have been refused (systemd's RestartSec defaults to 100 ms; a crash
// without a restart enters failed at the exit itself).
constexpr Usec REFUSED_AFTER_EXIT_USEC = 10 * core::USEC_PER_MSEC;

bool isBadResult(std::string_view result) { return !result.empty() && result != "success"; }

// Non-service units carry no Result; for them entering failed is the only sign of trouble.
bool isBadEnd(const UnitSnapshot& s) {
    return isBadResult(s.result) || (s.result.empty() && s.active_state == "failed");
}

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
    if (stamp.source == core::Source::Reconcile)
        t.unwatched_since_usec = stamp.unwatched_since_usec;
    return t;
}

// A run end seen with the unit's final Result; the exit facts only when they are this run's.
Transition makeRunEnd(const UnitSnapshot& s, bool with_exit, const Stamp& stamp) {
    Transition t = make(s, isBadEnd(s) ? Event::Crash : Event::Stop, stamp);
    if (with_exit && s.exec_main_code != 0) {
        t.exit_code = std::string(core::exitCodeName(s.exec_main_code));
        t.exit_status = s.exec_main_status;
    }
    return t;
}

// How a run we never saw end most likely ended, given that an automatic restart followed it,
// when the manager's journal does not tell (not kept, not readable, or rotated). The newest
// finished run in view speaks for the unseen ones of the same loop. With none in view it counts as
// a crash: restarts follow failures unless Restart=always, and a crash loop missed is a page
// missed, while a respawn loop still shows in its restart rows.
Event unseenEndBeforeRestart(const UnitSnapshot& b, const UnitSnapshot& a, bool exit_new) {
    if (exit_new) return isBadEnd(a) ? Event::Crash : Event::Stop;
    if (b.exec_main_exit_mono != 0) {
        // Result tells how that run ended only while the unit rests: a restart resets it to
        // success, and then the exit status speaks (0 is clean).
        if (atRest(b)) return isBadEnd(b) ? Event::Crash : Event::Stop;
        return b.exec_main_code == 1 && b.exec_main_status == 0 ? Event::Stop : Event::Crash;
    }
    return Event::Crash;
}

// An unseen end the manager's journal tells about: its run's InvocationID, Result and exit
// replace the guess. `run` is the invocation the end must belong to, when known.
bool explain(Transition& end, const JournalEnds& journal, std::int64_t restart,
             std::string_view run) {
    const auto it = journal.find(restart);
    if (it == journal.end()) return false;
    const JournalEnd& logged = it->second;
    if (!run.empty() && logged.invocation_id != run) return false;
    end.event = isBadResult(logged.result) ? Event::Crash : Event::Stop;
    end.result = logged.result;
    end.invocation_id = logged.invocation_id;
    end.exit_code = logged.exit_code;
    end.exit_status = logged.exit_code.empty() ? std::nullopt : logged.exit_status;
    return true;
}

// The time the manager logged row `i` at: a restart, or an end the journal told (`told`)
// followed by its restart. nullopt for any other row.
std::optional<std::pair<Usec, Usec>> loggedAt(const std::vector<Transition>& out, std::size_t i,
                                              const std::set<std::size_t>& told,
                                              const JournalEnds& journal) {
    const bool restart = out[i].event == Event::Restart;
    if (!restart && !(told.count(i) && i + 1 < out.size() && out[i + 1].event == Event::Restart))
        return std::nullopt;
    const auto it = journal.find(out[restart ? i : i + 1].n_restarts.value_or(-1));
    if (it == journal.end()) return std::nullopt;
    const JournalEnd& e = it->second;
    const auto at = restart ? std::pair{e.restarted_usec, e.restarted_mono}
                            : std::pair{e.ended_usec, e.ended_mono};
    if (at.first <= 0 || at.second <= 0) return std::nullopt;
    return at;
}

// Rows inferred at a reconcile carry its time. Where the journal told every end and restart
// up to the last restart, in order and within the time nobody watched, they carry the times
// the manager logged them at instead: the history shows when each happened. (They keep
// unwatched_since_usec, so the rules weigh them as before.)
void retime(std::vector<Transition>& out, const std::set<std::size_t>& told,
            const JournalEnds& journal, const Stamp& stamp) {
    std::size_t last_restart = out.size();
    for (std::size_t i = 0; i < out.size(); ++i)
        if (out[i].event == Event::Restart) last_restart = i;
    if (last_restart == out.size() || !stamp.unwatched_since_usec) return;
    std::vector<std::pair<Usec, Usec>> at;
    for (std::size_t i = 0; i <= last_restart; ++i) {
        const auto logged = loggedAt(out, i, told, journal);
        const auto previous =
            at.empty() ? std::pair{*stamp.unwatched_since_usec, Usec{0}} : at.back();
        if (!logged || logged->first < previous.first || logged->second < previous.second ||
            logged->first > stamp.ts_usec || logged->second > stamp.mono_usec)
            return;
        at.push_back(*logged);
    }
    for (std::size_t i = 0; i <= last_restart; ++i) {
        out[i].ts_usec = at[i].first;
        out[i].mono_usec = at[i].second;
    }
}

}  // namespace

std::int64_t restartsBetween(std::int64_t before, std::int64_t after) {
    if (before < 0 || after < 0) return 0;
    return after >= before ? after - before : after;
}

bool isStale(const UnitSnapshot& known, const PropertyDelta& d) {
    if (d.state_change_mono && *d.state_change_mono < known.state_change_mono) return true;
    if (!d.exec_main_start_mono || known.exec_main_start_mono == 0) return false;
    const Usec start = *d.exec_main_start_mono;
    if (start == 0) {
        // systemd 252 zeroes ExecMain* when a start begins (and keeps them zero when an
        // ExecStartPre= fails): a zero is a reset, unless the known process still runs.
        return known.main_pid > 0;
    }
    if (start < known.exec_main_start_mono) return true;
    if (start == known.exec_main_start_mono) {
        // Same process: its restart count cannot fall, nor its exit be undone. Only
        // `systemctl reset-failed` zeroes NRestarts under a running process.
        if (d.n_restarts && *d.n_restarts != 0 && *d.n_restarts < known.n_restarts) return true;
        if (d.exec_main_exit_mono && *d.exec_main_exit_mono < known.exec_main_exit_mono)
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

// Every PropertiesChanged of a service comes twice (Service, then Unit interface), and
// under load systemd merges states, so `before` -> `after` may hide whole cycles. Each
// cycle is rebuilt from counters rather than from states: NRestarts counts the automatic
// restarts, ExecMainStartTimestamp changes once per spawned process and
// ExecMainExitTimestamp once per finished one (both zeroed when a start begins), and a new
// InvocationID marks a start job that got past the start limit.
std::vector<Transition> derive(const UnitSnapshot& b, UnitSnapshot& a, const Stamp& stamp,
                               const JournalEnds& journal) {
    std::vector<Transition> out;
    std::set<std::size_t> told;  // rows whose end the journal told
    if (b.active_state.empty()) {
        // First sighting: whatever ran before is history we did not see. Take it as the
        // baseline so the next change is measured against it.
        a.reported_exit_mono = a.exec_main_exit_mono;
        a.run_ended = !hasOpenRun(a);
        a.in_restart_cycle = false;
        a.gave_up = a.active_state == "failed" && a.result == "start-limit-hit";
        a.awaiting_end = false;
        return out;
    }
    a.reported_exit_mono = b.reported_exit_mono;
    a.gave_up = b.gave_up;
    // Here: an automatic restart was stored whose new InvocationID has not been seen yet.
    a.in_restart_cycle = b.in_restart_cycle;

    const bool up_before = isUp(b.active_state);
    const bool spawned =
        a.exec_main_start_mono != 0 && a.exec_main_start_mono != b.exec_main_start_mono;
    const bool exit_new =
        a.exec_main_exit_mono != 0 && a.exec_main_exit_mono != b.reported_exit_mono;
    const bool new_invocation =
        !a.invocation_id.empty() && !b.invocation_id.empty() && a.invocation_id != b.invocation_id;
    const bool reset = b.n_restarts >= 0 && a.n_restarts >= 0 && a.n_restarts < b.n_restarts;
    const std::int64_t restarts = restartsBetween(b.n_restarts, a.n_restarts);
    const std::int64_t first = a.n_restarts - restarts;
    // While no new process was spawned, the exit in `after` is that of `before`'s process.
    const bool exit_of_before = exit_new && !spawned;
    // An up unit with a new invocation that no stored restart accounts for was restarted by
    // hand within one snapshot. (The Service signal, with NRestarts, comes before the Unit
    // signal that carries the new InvocationID.)
    const bool replaced = up_before && new_invocation && restarts == 0 && !b.in_restart_cycle;
    // The Unit signal has not come yet: the states in `after` are still the old ones.
    const bool state_stale = a.state_change_mono == b.state_change_mono;
    const Event unseen = unseenEndBeforeRestart(b, a, exit_new);
    bool open = !b.run_ended;
    // Read at a reconcile (a GetAll, which never shows the moment between a crash and its
    // auto-restart): resting in failed after restarts, entered well after the last exit, is a
    // give-up: systemd went to failed when it refused the last restart, RestartSec after the
    // exit. The run in view is then the one before that refused restart.
    const bool refused_last = stamp.source == core::Source::Reconcile && restarts > 0 && spawned &&
                              exit_new && a.active_state == "failed" &&
                              a.state_change_mono > a.exec_main_exit_mono + REFUSED_AFTER_EXIT_USEC;
    // A restart was counted and the run it began has not ended in our view: if it is not
    // open either (its start was not seen: cerberus stopped, or the bus was down, between
    // the restart and the spawn), the next restart follows its unseen end. With one restart
    // and a run in view that spawned and ended, that run may itself be the awaited one (its
    // restart refused): unless the refusal is known, its end is left to the run in view.
    // The journal knows: it names the run the counted restart followed, and when that is not
    // the run in view, the awaited run ended unseen before it.
    const auto logged_first = journal.find(first + 1);
    const bool followed_run_in_view =
        logged_first == journal.end() || logged_first->second.invocation_id == a.invocation_id;
    bool awaiting = b.awaiting_end && (refused_last || !(restarts == 1 && spawned && exit_new &&
                                                         atRest(a) && followed_run_in_view));

    auto store_end = [&](Transition t, bool with_exit) {
        if (with_exit) a.reported_exit_mono = a.exec_main_exit_mono;
        out.push_back(std::move(t));
        awaiting = false;
    };

    // 1. The run open in `before` ended: an automatic restart or a new invocation followed
    // it, or the unit came to rest with its process gone.
    if (open && (restarts > 0 || replaced ||
                 (atRest(a) && (up_before || exit_of_before || a.main_pid == 0)))) {
        // Seen: the unit came to rest, or the exit in `after` is this run's own.
        const bool seen = exit_of_before || (restarts == 0 && !replaced);
        Transition end = seen ? makeRunEnd(a, exit_of_before, stamp)
                              : make(a, restarts > 0 ? unseen : Event::Stop, stamp);
        if (!seen) end.result.clear();
        end.invocation_id = b.invocation_id;
        if (b.n_restarts >= 0) end.n_restarts = b.n_restarts;
        // The restart that followed it is the first counted here, if it was this run's.
        if (!seen && restarts > 0 && !b.invocation_id.empty())
            if (explain(end, journal, first + 1, b.invocation_id)) told.insert(out.size());
        store_end(std::move(end), exit_of_before);
        open = false;
    }

    // 2. Automatic restarts, one row per increment. Each one but the first followed a run we
    // did not see (states merged under load, or cerberus was not running); after a reset the
    // first one followed the run an operator started.
    // A reload while a unit waits to be restarted can make systemd count that restart twice:
    // the journal then names the same run before both, and no run ended between them.
    std::string last_ended = open ? std::string() : b.invocation_id;
    bool view_run_told = false;
    for (std::int64_t i = 0; i < restarts; ++i) {
        const auto logged = journal.find(first + i + 1);
        const bool counted_again = logged != journal.end() && !last_ended.empty() &&
                                   logged->second.invocation_id == last_ended;
        // The journal names another run than the last one ended: it began and ended unseen
        // (its start came while cerberus was going, or merged away).
        const bool other_run = logged != journal.end() && !last_ended.empty() && !counted_again;
        if ((i > 0 || reset || (awaiting && !open) || other_run) && !counted_again) {
            Transition end = make(a, unseen, stamp);
            end.result.clear();
            end.invocation_id.clear();
            end.main_pid.reset();
            end.n_restarts = first + i;
            if (explain(end, journal, first + i + 1, {})) {
                told.insert(out.size());
                // The run in view, its restart counted but not yet spawned: ended here.
                if (end.invocation_id == a.invocation_id && exit_new && atRest(a))
                    view_run_told = true;
            }
            last_ended = end.invocation_id;
            out.push_back(std::move(end));
        }
        Transition restart = make(a, Event::Restart, stamp);
        restart.n_restarts = first + i + 1;
        out.push_back(std::move(restart));
    }
    if (restarts > 0) a.in_restart_cycle = true;
    awaiting = restarts > 0 || (awaiting && !reset);

    // 3. A new main process (or the new invocation that replaced the old run) started a run;
    // it may have ended already.
    if (spawned || (replaced && hasOpenRun(a))) open = true;
    if (refused_last || view_run_told) {
        // Its end was stored above, as the unseen end before the refused restart, or before
        // the restart the manager counted and has not spawned yet.
        open = false;
        a.reported_exit_mono = a.exec_main_exit_mono;
    }
    if (open && spawned && exit_new && atRest(a)) {
        store_end(makeRunEnd(a, true, stamp), true);
        open = false;
    }
    // An exit whose run was already stored (or never opened) must not be reported later.
    if (exit_new && !open) a.reported_exit_mono = a.exec_main_exit_mono;

    // 4. Entered failed.
    if (a.active_state == "failed" && b.active_state != "failed") {
        out.push_back(make(a, Event::Fail, stamp));
        // The attempt the restart began ended, and was seen: a refused start (give-up), an
        // ExecStartPre= that failed, or the run's own crash just stored.
        awaiting = false;
    }

    // 4b. An operator stopped the unit while it waited to be restarted (`systemctl stop`
    // during RestartSec): the pending restart was cancelled and nothing runs. The run's end
    // was stored when it crashed; this row says the operator ended the loop. A give-up looks
    // alike but comes after a restart (NRestarts grew, in_restart_cycle).
    const bool waiting = b.active_state == "activating" && b.sub_state == "auto-restart";
    if (waiting && !b.in_restart_cycle && restarts == 0 && !spawned && !new_invocation &&
        (a.active_state == "inactive" || a.active_state == "failed")) {
        Transition stop = make(a, Event::Stop, stamp);
        if (b.n_restarts >= 0) stop.n_restarts = b.n_restarts;
        out.push_back(std::move(stop));
    }

    // 5. Became active: a new run is up. A process that has exited already did not leave the
    // unit active: only the old state is in view until the Unit signal comes.
    const bool gone_before_seen = spawned && exit_new && state_stale;
    if (isActive(a.active_state) && (!up_before || restarts > 0 || replaced) && !gone_before_seen) {
        out.push_back(make(a, Event::Start, stamp));
        open = true;
    }

    if (new_invocation) a.in_restart_cycle = false;
    // The restart stored last has not begun its run: a refusal of it is a give-up.
    if (refused_last || view_run_told) a.in_restart_cycle = true;
    if (spawned || new_invocation || isActive(a.active_state)) a.gave_up = false;

    // 6. The manager stopped restarting. systemd 252 keeps Result=exit-code when the previous
    // run failed: the sign is a restart whose start was refused (it never got a new
    // InvocationID) and a unit resting in failed. Result=start-limit-hit shows only when the
    // previous run had succeeded.
    if (!a.gave_up && a.active_state == "failed" &&
        (a.result == "start-limit-hit" || a.in_restart_cycle)) {
        out.push_back(make(a, Event::GiveUp, stamp));
        a.gave_up = true;
        a.in_restart_cycle = false;
    }

    a.run_ended = !open;
    a.awaiting_end = awaiting;
    if (stamp.source == core::Source::Reconcile) retime(out, told, journal, stamp);
    return out;
}

}  // namespace cerberus::ingest
