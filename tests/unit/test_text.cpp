#include <doctest/doctest.h>

#include "core/text.hpp"

using namespace cerberus::core;

TEST_CASE("one thing is singular, none and many are plural") {
    CHECK(plural(1, "rule") == "1 rule");
    CHECK(plural(0, "rule") == "0 rules");
    CHECK(plural(3, "rule") == "3 rules");
    CHECK(plural(2, "crash", "crashes") == "2 crashes");
    CHECK(plural(1, "crash", "crashes") == "1 crash");
}
