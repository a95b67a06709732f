#include <doctest/doctest.h>

#include <string>

#include "ingest/unit_path.hpp"

using cerberus::ingest::unitNameFromPath;
using cerberus::ingest::unitObjectPath;

namespace {
const std::string UNIT = "/org/freedesktop/systemd1/unit/";
}  // namespace

TEST_CASE("a dash and a dot are escaped as _2d and _2e") {
    CHECK(unitObjectPath("a-b.service") == UNIT + "a_2db_2eservice");
}

TEST_CASE("a template instance escapes its @") {
    CHECK(unitObjectPath("foo@a-b.service") == UNIT + "foo_40a_2db_2eservice");
}

TEST_CASE("a name holding systemd's own \\x2d escape has its backslash escaped once more") {
    // The unit name is the 4 characters backslash, x, 2, d; only the backslash is escaped.
    const std::string name = "foo\\x2dbar.service";
    REQUIRE(name.size() == 18);
    CHECK(unitObjectPath(name) == UNIT + "foo_5cx2dbar_2eservice");
    CHECK(unitNameFromPath(UNIT + "foo_5cx2dbar_2eservice") == name);
}

TEST_CASE("a leading digit is escaped, later digits are not") {
    CHECK(unitObjectPath("1password.service") == UNIT + "_31password_2eservice");
    CHECK(unitObjectPath("x11.service") == UNIT + "x11_2eservice");
}

TEST_CASE("the root mount's name survives encoding") {
    CHECK(unitObjectPath("-.mount") == UNIT + "_2d_2emount");
}

TEST_CASE("every name round-trips through its object path") {
    for (const std::string name :
         {"a-b.service", "foo@a-b.service", "foo\\x2dbar.service", "1password.service", "-.mount",
          "user@1000.service", "dev-disk-by\\x2duuid-1234.device", "a_b.socket", "UPPER.target",
          "sys-devices-platform-serial8250-tty-ttyS0.device"}) {
        CAPTURE(name);
        const std::string path = unitObjectPath(name);
        CHECK(path.rfind(UNIT, 0) == 0);
        CHECK(unitNameFromPath(path) == name);
    }
}

TEST_CASE("an escaped path decodes to the unit name") {
    CHECK(unitNameFromPath(UNIT + "a_2db_2eservice") == "a-b.service");
}

TEST_CASE("paths outside the unit namespace name no unit") {
    CHECK_FALSE(unitNameFromPath("/org/freedesktop/systemd1"));
    CHECK_FALSE(unitNameFromPath("/org/freedesktop/systemd1/unit"));
    CHECK_FALSE(unitNameFromPath("/org/freedesktop/systemd1/unitx"));
    CHECK_FALSE(unitNameFromPath("/org/freedesktop/systemd1/job/42"));
    CHECK_FALSE(unitNameFromPath("/org/freedesktop/systemd1/unit/a/b"));
    CHECK_FALSE(unitNameFromPath("/"));
}

TEST_CASE("strings that are no object path name no unit") {
    CHECK_FALSE(unitNameFromPath(""));
    CHECK_FALSE(unitNameFromPath("a-b.service"));
    CHECK_FALSE(unitNameFromPath(UNIT + "a-b.service"));
    CHECK_FALSE(unitNameFromPath(UNIT + "a_2db_2eservice/"));
}
