#include <doctest/doctest.h>

#include <limits>

#include "core/time.hpp"

using namespace cerberus::core;

TEST_CASE("durations read in every unit") {
    CHECK(parseDuration("500ms") == 500 * USEC_PER_MSEC);
    CHECK(parseDuration("30s") == 30 * USEC_PER_SEC);
    CHECK(parseDuration("5m") == 5 * USEC_PER_MIN);
    CHECK(parseDuration("2h") == 2 * USEC_PER_HOUR);
    CHECK(parseDuration("1d") == USEC_PER_DAY);
    CHECK(parseDuration("250us") == 250);
    CHECK(parseDuration("0s") == 0);
}

TEST_CASE("a duration may be a sum of parts") {
    CHECK(parseDuration("1h30m") == USEC_PER_HOUR + 30 * USEC_PER_MIN);
    CHECK(parseDuration("1m30s500ms") == USEC_PER_MIN + 30 * USEC_PER_SEC + 500 * USEC_PER_MSEC);
}

TEST_CASE("malformed durations are refused") {
    CHECK_FALSE(parseDuration(""));
    CHECK_FALSE(parseDuration("5"));
    CHECK_FALSE(parseDuration("-1s"));
    CHECK_FALSE(parseDuration("+1s"));
    CHECK_FALSE(parseDuration("5x"));
    CHECK_FALSE(parseDuration("s"));
    CHECK_FALSE(parseDuration("1h30"));
    CHECK_FALSE(parseDuration("1 h"));
    CHECK_FALSE(parseDuration(" 5m"));
    CHECK_FALSE(parseDuration("1.5h"));
    CHECK_FALSE(parseDuration("5M"));
}

TEST_CASE("durations that do not fit in 64 bits are refused, not wrapped") {
    CHECK_FALSE(parseDuration("99999999999999999999us"));  // more digits than int64
    CHECK_FALSE(parseDuration("9223372036855s"));          // fits as a number, not in usec
    CHECK_FALSE(parseDuration("106751992d"));
    CHECK(parseDuration("106751991d") == 106751991 * USEC_PER_DAY);
    // Each part fits; their sum does not.
    CHECK_FALSE(parseDuration("106751991d106751991d"));
    CHECK(parseDuration("9223372036854775807us") == std::numeric_limits<Usec>::max());
    CHECK_FALSE(parseDuration("9223372036854775807us1us"));
}

TEST_CASE("durations are written in their shortest exact spelling") {
    CHECK(formatDuration(0) == "0s");
    CHECK(formatDuration(90 * USEC_PER_SEC) == "1m30s");
    CHECK(formatDuration(500 * USEC_PER_MSEC) == "500ms");
    CHECK(formatDuration(5 * USEC_PER_MIN) == "5m");
    CHECK(formatDuration(USEC_PER_DAY + 2 * USEC_PER_HOUR) == "1d2h");
    CHECK(formatDuration(1500) == "1ms500us");
    CHECK(formatDuration(-30 * USEC_PER_SEC) == "-30s");
}

TEST_CASE("a written duration reads back to the same value") {
    for (const Usec usec : {Usec{1}, 999 * USEC_PER_MSEC, 90 * USEC_PER_SEC, 36 * USEC_PER_HOUR,
                            USEC_PER_DAY + USEC_PER_SEC + 7, std::numeric_limits<Usec>::max()}) {
        CAPTURE(usec);
        CHECK(parseDuration(formatDuration(usec)) == usec);
    }
}

TEST_CASE("the most negative duration is written without overflow") {
    CHECK(formatDuration(std::numeric_limits<Usec>::min()).front() == '-');
}

TEST_CASE("ISO times read in UTC, with offsets and fractions") {
    const Usec base = 1795558437 * USEC_PER_SEC;  // 2026-11-24T22:13:57Z
    CHECK(parseIsoTime("2026-11-24T22:13:57Z") == base);
    CHECK(parseIsoTime("2026-11-24T22:13:57") == base);
    CHECK(parseIsoTime("2026-11-24 22:13:57Z") == base);
    CHECK(parseIsoTime("2026-11-24T22:13:57.123Z") == base + 123 * USEC_PER_MSEC);
    CHECK(parseIsoTime("2026-11-24T22:13:57.000001Z") == base + 1);
    CHECK(parseIsoTime("2026-11-24T22:13:57.5Z") == base + 500 * USEC_PER_MSEC);
    CHECK(parseIsoTime("2026-11-24T23:13:57+01:00") == base);
    CHECK(parseIsoTime("2026-11-24T23:13:57+0100") == base);
    CHECK(parseIsoTime("2026-11-24T17:43:57-04:30") == base);
    CHECK(parseIsoTime("2026-11-25T00:13:57.250+02:00") == base + 250 * USEC_PER_MSEC);
    CHECK(parseIsoTime("2026-11-24T22:13Z") == base - 57 * USEC_PER_SEC);
    CHECK(parseIsoTime("2026-11-24") ==
          base - (22 * USEC_PER_HOUR + 13 * USEC_PER_MIN + 57 * USEC_PER_SEC));
    CHECK(parseIsoTime("1970-01-01T00:00:00Z") == 0);
}

TEST_CASE("malformed or impossible ISO times are refused") {
    CHECK_FALSE(parseIsoTime(""));
    CHECK_FALSE(parseIsoTime("2026"));
    CHECK_FALSE(parseIsoTime("2026-13-01"));
    CHECK_FALSE(parseIsoTime("2026-02-30"));
    CHECK_FALSE(parseIsoTime("2025-02-29"));
    CHECK(parseIsoTime("2024-02-29"));
    CHECK_FALSE(parseIsoTime("2026-11-24T24:00:00Z"));
    CHECK_FALSE(parseIsoTime("2026-11-24T-1:00:00Z"));
    CHECK_FALSE(parseIsoTime("2026-11-24T22:-1:00Z"));
    CHECK_FALSE(parseIsoTime("2026-11-24T22:13:57.Z"));
    CHECK_FALSE(parseIsoTime("2026-11-24T22:13:57Zjunk"));
    CHECK_FALSE(parseIsoTime("2026-11-24T22:13:57+25:00"));
    CHECK_FALSE(parseIsoTime("2026-11-24X22:13:57Z"));
    CHECK_FALSE(parseIsoTime("yesterday"));
}

TEST_CASE("ISO times are written in UTC with milliseconds") {
    CHECK(formatIsoTime(1795558437 * USEC_PER_SEC + 123456) == "2026-11-24T22:13:57.123Z");
    CHECK(formatIsoTime(0) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("times before 1970 are written with a positive fraction") {
    CHECK(formatIsoTime(-1 * USEC_PER_MSEC) == "1969-12-31T23:59:59.999Z");
    CHECK(parseIsoTime(formatIsoTime(-1 * USEC_PER_MSEC)) == -1 * USEC_PER_MSEC);
}

TEST_CASE("a written ISO time reads back to the millisecond") {
    for (const Usec usec : {Usec{0}, 1795558437123 * USEC_PER_MSEC, 951782400001 * USEC_PER_MSEC}) {
        CAPTURE(usec);
        CHECK(parseIsoTime(formatIsoTime(usec)) == usec);
    }
    // Finer than a millisecond is cut, not rounded.
    CHECK(parseIsoTime(formatIsoTime(1795558437 * USEC_PER_SEC + 999999)) ==
          1795558437 * USEC_PER_SEC + 999 * USEC_PER_MSEC);
}

TEST_CASE("a time argument is a duration ago or an ISO time") {
    const Usec now = 1795558437 * USEC_PER_SEC;
    CHECK(parseTimeArg("2h", now) == now - 2 * USEC_PER_HOUR);
    CHECK(parseTimeArg("1h30m", now) == now - 90 * USEC_PER_MIN);
    CHECK(parseTimeArg("2026-11-24T20:13:57Z", now) == now - 2 * USEC_PER_HOUR);
    CHECK(parseTimeArg("2026-11-24", now) == 1795478400 * USEC_PER_SEC);
    CHECK_FALSE(parseTimeArg("", now));
    CHECK_FALSE(parseTimeArg("2", now));
    CHECK_FALSE(parseTimeArg("soon", now));
}

TEST_CASE("the system clock reads a sane wall time and a moving monotonic time") {
    const SystemClock clock;
    CHECK(clock.realtime() > 1600000000 * USEC_PER_SEC);
    const Usec a = clock.monotonic();
    const Usec b = clock.monotonic();
    CHECK(b >= a);
}
