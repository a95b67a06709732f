#include <doctest/doctest.h>

#include "core/unit_name.hpp"

using namespace cerberus::core;

TEST_CASE("a bare name means the service of that name, as journalctl -u reads it") {
    CHECK(unitMatches("payments", "payments.service"));
    CHECK(unitMatches("payments", "payments"));  // a job reported with cerberus emit
    CHECK_FALSE(unitMatches("payments", "payments.timer"));
    CHECK_FALSE(unitMatches("payments", "payments-api.service"));
}

TEST_CASE("a pattern that names a unit type stays as written") {
    CHECK(unitMatches("*.timer", "backup.timer"));
    CHECK_FALSE(unitMatches("*.timer", "backup.service"));
    CHECK(unitGlobs("payments.service") == std::vector<std::string>{"payments.service"});
}

TEST_CASE("globs follow the same rule") {
    CHECK(unitMatches("pay*", "payments.service"));
    CHECK(unitMatches("demo-?", "demo-a.service"));
    CHECK(unitGlobs("pay*") == std::vector<std::string>{"pay*"});
    CHECK_FALSE(unitMatches("demo-?", "demo-ab.service"));
}

TEST_CASE("a suffix alone is not a unit name") {
    CHECK_FALSE(hasUnitSuffix(".service"));
    CHECK(hasUnitSuffix("a.service"));
    CHECK(hasUnitSuffix("dev-sda.device"));
    CHECK_FALSE(hasUnitSuffix("payments"));
}
