// How long a reconcile takes to read, from the journal, how the runs of one unit ended while
// nobody watched: RESTARTS crash-and-restart cycles logged as systemd 252 logs them (an exit,
// a failure and a scheduled restart per run), read back by ingest::ManagerJournal.
// Limit: 200 ms for 2000 restarts, so that the most a reconcile reads for one unit (10,000
// restarts) stays near a second. Needs a running journald (bench/run.sh starts one).

#include <systemd/sd-journal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "ingest/manager_journal.hpp"

using namespace cerberus;

namespace {

constexpr std::int64_t RESTARTS = 2000;  // 6000 entries: within journald's rate limit
constexpr double LIMIT_SECONDS = 0.2;

core::Usec wallNow() {
    timespec ts{};
    (void)clock_gettime(CLOCK_REALTIME, &ts);  // CLOCK_REALTIME cannot fail
    return static_cast<core::Usec>(ts.tv_sec) * core::USEC_PER_SEC + ts.tv_nsec / 1000;
}

std::string invocation(const std::string& unit, std::int64_t run) {
    char id[33];
    (void)std::snprintf(id, sizeof id, "%016zx%016llx", std::hash<std::string>{}(unit),
                        static_cast<unsigned long long>(run));
    return id;
}

// One run of `unit` ended (exit 3) and the manager scheduled restart `n`.
bool logCycle(const std::string& unit, std::int64_t n) {
    const std::string run = invocation(unit, n);
    return sd_journal_send("MESSAGE=%s: Main process exited, code=exited, status=3/NOTIMPLEMENTED",
                           unit.c_str(), "MESSAGE_ID=98e322203f7a4ed290d09fe03c09fe15",
                           "USER_UNIT=%s", unit.c_str(), "USER_INVOCATION_ID=%s", run.c_str(),
                           "EXIT_CODE=exited", "EXIT_STATUS=3", nullptr) >= 0 &&
           sd_journal_send("MESSAGE=%s: Failed with result 'exit-code'.", unit.c_str(),
                           "MESSAGE_ID=d9b373ed55a64feb8242e02dbe79a49c", "USER_UNIT=%s",
                           unit.c_str(), "USER_INVOCATION_ID=%s", run.c_str(),
                           "UNIT_RESULT=exit-code", nullptr) >= 0 &&
           sd_journal_send("MESSAGE=%s: Scheduled restart job, restart counter is at %lld.",
                           unit.c_str(), static_cast<long long>(n),
                           "MESSAGE_ID=5eb03494b6584870a536b337290809b3", "USER_UNIT=%s",
                           unit.c_str(), "USER_INVOCATION_ID=%s", run.c_str(), "N_RESTARTS=%lld",
                           static_cast<long long>(n), nullptr) >= 0;
}

}  // namespace

int main() {
    const std::string unit = "bench-unseen-" + std::to_string(getpid()) + ".service";
    const core::Usec since = wallNow();
    for (std::int64_t n = 1; n <= RESTARTS; ++n) {
        if (!logCycle(unit, n)) {
            std::fprintf(stderr, "unseen: cannot write to the journal (is journald running?)\n");
            return 1;
        }
    }
    // journald writes what it receives in order; wait (bounded) until the last restart is in.
    ingest::ManagerJournal journal;
    ingest::JournalEnds ends;
    for (int tries = 0; tries < 200 && ends.size() != static_cast<std::size_t>(RESTARTS); ++tries) {
        usleep(50'000);
        journal.beginReconcile();
        ends = journal.endsBefore(unit, 1, RESTARTS, getpid(), since);
    }
    if (ends.size() != static_cast<std::size_t>(RESTARTS)) {
        std::fprintf(stderr, "unseen: %zu of %lld restarts reached the journal\n", ends.size(),
                     static_cast<long long>(RESTARTS));
        return 1;
    }
    const auto start = std::chrono::steady_clock::now();
    journal.beginReconcile();  // as a reconcile does: the journal opened afresh
    ends = journal.endsBefore(unit, 1, RESTARTS, getpid(), since);
    journal.endReconcile();
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const bool all_told = ends.size() == static_cast<std::size_t>(RESTARTS) &&
                          ends.at(1).result == "exit-code" && ends.at(RESTARTS).exit_status == 3;
    std::printf("unseen: %lld unseen restarts of one unit read from the journal in %.1f ms%s\n",
                static_cast<long long>(RESTARTS), took * 1e3, all_told ? "" : " (WRONG ENDS)");
    std::printf("unseen: ratio %.2f of the %.0f ms limit: %s\n", took / LIMIT_SECONDS,
                LIMIT_SECONDS * 1e3, took <= LIMIT_SECONDS && all_told ? "met" : "NOT met");
    return all_told ? 0 : 1;
}
