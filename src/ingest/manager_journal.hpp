#pragma once

// How runs ended while nobody watched, as the manager logged them. For every run an
// automatic restart follows, systemd logs "Scheduled restart job, restart counter is at N"
// (MESSAGE_ID 5eb03494..., N_RESTARTS=N, the run's invocation ID); for a run that failed
// also "Failed with result 'R'" (d9b373ed..., UNIT_RESULT=R), and for an unclean exit
// "Main process exited, code=C, status=S" (98e32220..., EXIT_CODE=C, EXIT_STATUS=S). The
// failure is logged at warning, above the restart's info: a restart message with no failure
// message of the same run is a clean end. (A clean end's own "Deactivated successfully" is
// debug-level in a user manager, so it is not relied on.)

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "ingest/derive.hpp"

struct sd_journal;

namespace cerberus::ingest {

// One of the manager's messages about a unit, as read from the journal.
struct ManagerMessage {
    enum class Kind { RestartScheduled, Failed, ProcessExited };
    Kind kind = Kind::RestartScheduled;
    std::string invocation_id;
    std::int64_t n_restarts = -1;    // RestartScheduled
    std::string result;              // Failed
    std::string exit_code;           // ProcessExited: exited, killed, dumped
    std::optional<int> exit_status;  // ProcessExited
    core::Usec at_usec = 0;          // when it was logged (wall clock)
    core::Usec at_mono = 0;          // and on CLOCK_MONOTONIC; 0: another boot's
};

// The ends before restarts `first`..`last` told by `newest_first`. Where a counter comes
// twice (NRestarts was reset in between), the newest is the one counted now. An end is
// timed by its exit message (else its failure message; a clean one by its restart's).
JournalEnds endsFromMessages(const std::vector<ManagerMessage>& newest_first, std::int64_t first,
                             std::int64_t last);

class ManagerJournal {
public:
    // How the runs of `unit` before restarts `first`..`last` ended, from the messages of the
    // manager with PID `manager_pid` (1: the system manager, which names units UNIT=; any
    // other a user manager, USER_UNIT=), read back from the newest to `since_usec` (wall
    // clock) at the most. Empty when the journal cannot be read or holds none of them.
    // journald stores what the manager sent a moment ago a little later: when the newest
    // restart wanted is not there yet, endsBefore waits for it, at most half a second in all
    // per reconcile. Only between beginReconcile() and endReconcile(): the first call opens
    // the journal, endReconcile() closes it (nothing is held open between reconciles).
    JournalEnds endsBefore(const std::string& unit, std::int64_t first, std::int64_t last,
                           pid_t manager_pid, std::optional<core::Usec> since_usec);
    void beginReconcile();
    void endReconcile();

private:
    struct Query {
        const std::string& unit;
        std::int64_t first = 0;
        std::int64_t last = 0;
        pid_t manager_pid = 0;
        std::optional<core::Usec> since_usec;
    };
    struct ReadBack {
        bool open = false;                     // the journal could be read
        bool newest_found = false;             // restart `last` is there
        std::vector<ManagerMessage> messages;  // newest first
    };
    ReadBack readBack(const Query& query);

    struct Closer {
        void operator()(sd_journal* j) const;
    };
    std::unique_ptr<sd_journal, Closer> journal_;  // open during a reconcile that needs it
    bool tried_open_ = false;                      // in this reconcile
    pid_t logging_manager_ = 0;  // a manager whose messages were found: it logs to the journal
    core::Usec wait_left_usec_ = 0;
};

}  // namespace cerberus::ingest
