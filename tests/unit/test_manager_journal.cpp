#include <doctest/doctest.h>

#include <vector>

#include "ingest/manager_journal.hpp"

using cerberus::ingest::endsFromMessages;
using cerberus::ingest::ManagerMessage;
using Kind = cerberus::ingest::ManagerMessage::Kind;

namespace {

ManagerMessage restart(std::int64_t n, const char* run, cerberus::core::Usec at = 0) {
    ManagerMessage m;
    m.at_usec = at;
    m.at_mono = at / 10;
    m.kind = Kind::RestartScheduled;
    m.n_restarts = n;
    m.invocation_id = run;
    return m;
}

ManagerMessage failed(const char* run, const char* result) {
    ManagerMessage m;
    m.kind = Kind::Failed;
    m.invocation_id = run;
    m.result = result;
    return m;
}

ManagerMessage exited(const char* run, const char* code, int status, cerberus::core::Usec at = 0) {
    ManagerMessage m;
    m.at_usec = at;
    m.at_mono = at / 10;
    m.kind = Kind::ProcessExited;
    m.invocation_id = run;
    m.exit_code = code;
    m.exit_status = status;
    return m;
}

}  // namespace

TEST_CASE("a restart with no failure of its run followed a clean exit") {
    // Newest first, as the journal is read back from its tail.
    const auto ends = endsFromMessages({restart(3, "c"), failed("b", "signal"),
                                        exited("b", "killed", 9), restart(2, "b"), restart(1, "a")},
                                       1, 3);
    REQUIRE(ends.size() == 3);
    CHECK(ends.at(1).invocation_id == "a");
    CHECK(ends.at(1).result == "success");
    CHECK(ends.at(1).exit_code.empty());
    CHECK(ends.at(2).invocation_id == "b");
    CHECK(ends.at(2).result == "signal");
    CHECK(ends.at(2).exit_code == "killed");
    CHECK(ends.at(2).exit_status == 9);
    CHECK(ends.at(3).result == "success");
}

TEST_CASE("only the restarts asked for, and the newest of a counter seen twice") {
    // NRestarts was reset in between: the older restart 1 belongs to a loop before the reset.
    const auto ends =
        endsFromMessages({restart(2, "y"), restart(1, "x"), failed("old", "exit-code"),
                          restart(1, "old"), restart(7, "older")},
                         1, 2);
    REQUIRE(ends.size() == 2);
    CHECK(ends.at(1).invocation_id == "x");
    CHECK(ends.at(1).result == "success");
    CHECK(ends.at(2).invocation_id == "y");
    CHECK(ends.count(7) == 0);
}

TEST_CASE("messages without a restart explain nothing") {
    CHECK(endsFromMessages({failed("a", "exit-code"), exited("a", "exited", 3)}, 1, 5).empty());
    CHECK(endsFromMessages({}, 1, 5).empty());
}

TEST_CASE("an end is timed by its exit, a clean one by the restart that followed") {
    const auto ends = endsFromMessages({restart(2, "b", 5'000), failed("b", "exit-code"),
                                        exited("b", "exited", 3, 4'800), restart(1, "a", 3'000)},
                                       1, 2);
    REQUIRE(ends.size() == 2);
    CHECK(ends.at(1).ended_usec == 3'000);  // logged no exit: its restart's time
    CHECK(ends.at(1).restarted_usec == 3'000);
    CHECK(ends.at(2).ended_usec == 4'800);
    CHECK(ends.at(2).ended_mono == 480);
    CHECK(ends.at(2).restarted_usec == 5'000);
    CHECK(ends.at(2).restarted_mono == 500);
}

TEST_CASE("a start the start limit refused says nothing of how the run before it ended") {
    // A clean run, restart 4 counted, its start refused: systemd logs the refusal as the last
    // run's failure with result start-limit-hit.
    const auto ends =
        endsFromMessages({failed("a", "start-limit-hit"), restart(4, "a"), restart(3, "z")}, 4, 4);
    REQUIRE(ends.size() == 1);
    CHECK(ends.at(4).result == "success");
}
