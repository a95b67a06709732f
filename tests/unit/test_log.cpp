#include <doctest/doctest.h>

#include "core/log.hpp"

using namespace cerberus::core;

TEST_CASE("stderr is the journal only when JOURNAL_STREAM names its device and inode") {
    CHECK(streamIsJournal("8:1234", 8, 1234));
    CHECK(streamIsJournal("64768:18446744073709551615", 64768, 18446744073709551615ULL));
    // Unset or empty: a terminal, a pipe, a test.
    CHECK_FALSE(streamIsJournal(nullptr, 8, 1234));
    CHECK_FALSE(streamIsJournal("", 8, 1234));
    // Inherited from a service whose stderr was redirected: another file.
    CHECK_FALSE(streamIsJournal("8:1234", 8, 1235));
    CHECK_FALSE(streamIsJournal("9:1234", 8, 1234));
    // Malformed values are not the journal.
    CHECK_FALSE(streamIsJournal("8", 8, 1234));
    CHECK_FALSE(streamIsJournal("8:", 8, 0));
    CHECK_FALSE(streamIsJournal(":1234", 0, 1234));
    CHECK_FALSE(streamIsJournal("8:12x4", 8, 1234));
    CHECK_FALSE(streamIsJournal("-8:1234", 8, 1234));
    CHECK_FALSE(streamIsJournal("8:1234:5", 8, 1234));
    CHECK_FALSE(streamIsJournal("99999999999999999999999:1", 0, 1));
}

TEST_CASE("a line for the journal starts with its priority, a line for a terminal does not") {
    CHECK(logText(Priority::Err, "cannot write", true) == "<3>cerberus: cannot write\n");
    CHECK(logText(Priority::Warning, "retrying", true) == "<4>cerberus: retrying\n");
    CHECK(logText(Priority::Info, "stopped", true) == "<6>cerberus: stopped\n");
    CHECK(logText(Priority::Debug, "x", true) == "<7>cerberus: x\n");
    CHECK(logText(Priority::Err, "cannot write", false) == "cerberus: cannot write\n");
}

TEST_CASE("every line of a multi-line message keeps the priority in the journal") {
    CHECK(logText(Priority::Err, "reload refused:\n  a\n  b", true) ==
          "<3>cerberus: reload refused:\n<3>  a\n<3>  b\n");
    CHECK(logText(Priority::Err, "reload refused:\n  a", false) ==
          "cerberus: reload refused:\n  a\n");
}
