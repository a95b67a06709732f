#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/time.hpp"

namespace cerberus::core {

// The derived meaning of one stored transition (DESIGN.md, "Ingestion").
enum class Event : std::uint8_t { Start, Stop, Crash, Restart, Fail, GiveUp };
inline constexpr std::array<Event, 6> EVENTS{Event::Start,   Event::Stop, Event::Crash,
                                             Event::Restart, Event::Fail, Event::GiveUp};

std::string_view toString(Event event);
std::optional<Event> parseEvent(std::string_view text);
// The word people read for one or many such events: "crash"/"crashes", "failure"/"failures".
std::string_view eventNoun(Event event, bool many);
// "1 crash", "3 crashes", "2 failures".
std::string countOf(Event event, std::uint64_t count);
// The same word as a title: "Crashes", "Restarts", "Give-ups".
std::string_view eventTitle(Event event);

// Where a row came from: seen live, inferred at reconcile, or fed by another init.
enum class Source : std::uint8_t { Systemd, Reconcile, Emit, Supervisor };
inline constexpr std::array<Source, 4> SOURCES{Source::Systemd, Source::Reconcile, Source::Emit,
                                               Source::Supervisor};

std::string_view toString(Source source);
std::optional<Source> parseSource(std::string_view text);

// The last known facts about one unit, as systemd reports them. Ingestion keeps one per
// unit in memory; the store persists it (table `units`) so that a restarted cerberus can
// reconcile against what it knew before it stopped.
struct UnitSnapshot {
    std::string unit;
    // Facts as systemd reports them. Timestamps are systemd's CLOCK_MONOTONIC microseconds.
    std::string active_state;       // active, reloading, inactive, failed, activating, deactivating
    std::string sub_state;          // running, auto-restart, dead, failed, exited, ...
    std::string result;             // Service.Result; empty for non-service units
    int exec_main_code = 0;         // 1 exited, 2 killed, 3 dumped, 0 none
    int exec_main_status = 0;       // exit code or signal number
    Usec exec_main_start_mono = 0;  // ExecMainStartTimestampMonotonic: once per spawned run
    Usec exec_main_exit_mono = 0;   // ExecMainExitTimestampMonotonic: once per finished run
    Usec state_change_mono = 0;     // StateChangeTimestampMonotonic
    std::int64_t n_restarts = -1;   // NRestarts; -1 unknown (not a service, or not read yet)
    std::string invocation_id;      // 32 lowercase hex digits, or empty
    std::int64_t main_pid = 0;

    // What derivation has already said about this unit, so nothing is said twice.
    Usec reported_exit_mono = 0;    // the finished run last stored as stop/crash
    bool run_ended = false;         // a stop/crash was stored since the last restart
    bool in_restart_cycle = false;  // the manager was restarting it (auto-restart seen)
    bool gave_up = false;           // give_up stored; cleared when it becomes active again
    bool awaiting_end = false;      // a restart was counted; the end of the run it began is not

    bool operator==(const UnitSnapshot&) const = default;
};

// "exited", "killed", "dumped" or "" (ExecMainCode as a person reads it).
std::string_view exitCodeName(int exec_main_code);
int parseExitCodeName(std::string_view name);

// One row of `transitions`.
struct Transition {
    Usec ts_usec = 0;
    Usec mono_usec = 0;
    std::string unit;
    Event event = Event::Start;
    std::string active_state;
    std::string sub_state;
    std::string result;
    std::string exit_code;  // exitCodeName(); empty when there is no finished run
    std::optional<int> exit_status;
    std::optional<std::int64_t> n_restarts;
    std::string invocation_id;
    std::optional<std::int64_t> main_pid;
    Source source = Source::Systemd;
    // Reconcile rows: the earliest time it can have happened (when cerberus last watched);
    // it happened between then and ts_usec. nullopt: not known.
    std::optional<Usec> unwatched_since_usec;
};

}  // namespace cerberus::core
