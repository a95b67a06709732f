#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

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

TEST_CASE("durations read as systemd writes them, long names included") {
    CHECK(parseDuration("5min") == 5 * USEC_PER_MIN);
    CHECK(parseDuration("1w") == 7 * USEC_PER_DAY);
    CHECK(parseDuration("2 weeks") == 14 * USEC_PER_DAY);
    CHECK(parseDuration("1 week") == 7 * USEC_PER_DAY);
    CHECK(parseDuration("3 days") == 3 * USEC_PER_DAY);
    CHECK(parseDuration("1 day") == USEC_PER_DAY);
    CHECK(parseDuration("1hr") == USEC_PER_HOUR);
    CHECK(parseDuration("1 hour") == USEC_PER_HOUR);
    CHECK(parseDuration("2 hours") == 2 * USEC_PER_HOUR);
    CHECK(parseDuration("1 minute") == USEC_PER_MIN);
    CHECK(parseDuration("10 minutes") == 10 * USEC_PER_MIN);
    CHECK(parseDuration("3sec") == 3 * USEC_PER_SEC);
    CHECK(parseDuration("1 second") == USEC_PER_SEC);
    CHECK(parseDuration("10 seconds") == 10 * USEC_PER_SEC);
    CHECK(parseDuration("20msec") == 20 * USEC_PER_MSEC);
    CHECK(parseDuration("7usec") == 7);
}

TEST_CASE("durations sum their parts, with or without spaces") {
    CHECK(parseDuration("1h30m") == USEC_PER_HOUR + 30 * USEC_PER_MIN);
    CHECK(parseDuration("1h 30m") == USEC_PER_HOUR + 30 * USEC_PER_MIN);
    CHECK(parseDuration("1h 30min") == USEC_PER_HOUR + 30 * USEC_PER_MIN);
    CHECK(parseDuration("1 h 30 min") == USEC_PER_HOUR + 30 * USEC_PER_MIN);
    CHECK(parseDuration(" 5m ") == 5 * USEC_PER_MIN);
    CHECK(parseDuration("1m30s500ms") == USEC_PER_MIN + 30 * USEC_PER_SEC + 500 * USEC_PER_MSEC);
    CHECK(parseDuration("1w 2d") == 9 * USEC_PER_DAY);
}

TEST_CASE("fractional durations are read to the microsecond") {
    CHECK(parseDuration("1.5h") == 90 * USEC_PER_MIN);
    CHECK(parseDuration("0.25s") == 250 * USEC_PER_MSEC);
    CHECK(parseDuration(".5s") == 500 * USEC_PER_MSEC);
    CHECK(parseDuration("1.512469s") == 1512469);
    CHECK(parseDuration("2min 3.5s") == 123500 * USEC_PER_MSEC);
    CHECK(parseDuration("1.5us") == 1);  // below a microsecond is cut
    CHECK(parseDuration("0.000000000000000000001s") == 0);
}

TEST_CASE("an 18-digit fraction of an hour, a day or a week stays just under the unit") {
    CHECK(parseDuration("0.999999999999999999h") == USEC_PER_HOUR - 1);
    CHECK(parseDuration("0.999999999999999999d") == USEC_PER_DAY - 1);
    CHECK(parseDuration("0.999999999999999999w") == 7 * USEC_PER_DAY - 1);
}

TEST_CASE("malformed durations are refused") {
    CHECK_FALSE(parseDuration(""));
    CHECK_FALSE(parseDuration("  "));
    CHECK_FALSE(parseDuration("5"));  // no unit: seconds or minutes?
    CHECK_FALSE(parseDuration("-1s"));
    CHECK_FALSE(parseDuration("+1s"));
    CHECK_FALSE(parseDuration("5x"));
    CHECK_FALSE(parseDuration("s"));
    CHECK_FALSE(parseDuration("1h30"));
    CHECK_FALSE(parseDuration("1 h 30"));
    CHECK_FALSE(parseDuration("1.s"));
    CHECK_FALSE(parseDuration("1..5h"));
    CHECK_FALSE(parseDuration("5M"));  // months in systemd: refused, not read as minutes
    CHECK_FALSE(parseDuration("1y"));
    CHECK_FALSE(parseDuration("1h, 30m"));
}

TEST_CASE("durations past the range of microseconds are refused, not wrapped") {
    CHECK_FALSE(parseDuration("99999999999999999999us"));  // more digits than int64
    CHECK_FALSE(parseDuration("9223372036855s"));          // fits as a number, not in usec
    CHECK_FALSE(parseDuration("106751992d"));
    CHECK(parseDuration("106751991d") == 106751991 * USEC_PER_DAY);
    CHECK_FALSE(parseDuration("15250284.5w"));
    CHECK(parseDuration("15250284.4w"));
    // Two parts that each fit but not their sum.
    CHECK_FALSE(parseDuration("106751991d106751991d"));
    CHECK(parseDuration("9223372036854775807us") == std::numeric_limits<Usec>::max());
    CHECK_FALSE(parseDuration("9223372036854775807us1us"));
}

TEST_CASE("durations are written the short way systemd prints them") {
    CHECK(formatDuration(0) == "0s");
    CHECK(formatDuration(1) == "1us");
    CHECK(formatDuration(500 * USEC_PER_MSEC) == "500ms");
    CHECK(formatDuration(1500 * USEC_PER_MSEC) == "1.5s");
    CHECK(formatDuration(1500) == "1.5ms");
    CHECK(formatDuration(1512469) == "1.512469s");
    CHECK(formatDuration(5 * USEC_PER_MIN) == "5min");
    CHECK(formatDuration(90 * USEC_PER_SEC) == "1min 30s");
    CHECK(formatDuration(123 * USEC_PER_SEC) == "2min 3s");
    CHECK(formatDuration(123500 * USEC_PER_MSEC) == "2min 3.5s");
    CHECK(formatDuration(90 * USEC_PER_MIN) == "1h 30min");
    CHECK(formatDuration(USEC_PER_HOUR + 500 * USEC_PER_MSEC) == "1h 500ms");
    CHECK(formatDuration(USEC_PER_DAY + 2 * USEC_PER_HOUR) == "1d 2h");
    CHECK(formatDuration(9 * USEC_PER_DAY) == "1w 2d");
    CHECK(formatDuration(-30 * USEC_PER_SEC) == "-30s");
}

TEST_CASE("a duration written to an accuracy is rounded to it") {
    CHECK(formatDuration(1512469, USEC_PER_MSEC) == "1.512s");
    CHECK(formatDuration(1499, USEC_PER_MSEC) == "1ms");
    CHECK(formatDuration(1500, USEC_PER_MSEC) == "2ms");
    CHECK(formatDuration(400, USEC_PER_MSEC) == "0s");
    CHECK(formatDuration(59999 * USEC_PER_MSEC + 600, USEC_PER_MSEC) == "1min");
    CHECK(formatDuration(std::numeric_limits<Usec>::max(), USEC_PER_SEC).front() == '1');
}

TEST_CASE("a written duration reads back to the same value") {
    for (const Usec usec : {Usec{1}, 999 * USEC_PER_MSEC, 90 * USEC_PER_SEC, 36 * USEC_PER_HOUR,
                            USEC_PER_DAY + USEC_PER_SEC + 7, Usec{1512469}, 15 * USEC_PER_DAY + 1,
                            std::numeric_limits<Usec>::max()}) {
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

namespace {

// Sets TZ for one test case and puts the old value back.
class Zone {
public:
    explicit Zone(const char* tz) {
        if (const char* old = std::getenv("TZ")) old_ = old;
        setenv("TZ", tz, 1);
        tzset();
    }
    ~Zone() {
        if (old_) {
            setenv("TZ", old_->c_str(), 1);
        } else {
            unsetenv("TZ");
        }
        tzset();
    }
    Zone(const Zone&) = delete;
    Zone& operator=(const Zone&) = delete;

private:
    std::optional<std::string> old_;
};

Usec utc(const char* iso) { return *parseIsoTime(iso); }

}  // namespace

TEST_CASE("a time argument is relative to now as journalctl reads it") {
    const Usec now = 1795558437 * USEC_PER_SEC;
    CHECK(parseTimeArg("now", now) == now);
    CHECK(parseTimeArg("-1h", now) == now - USEC_PER_HOUR);
    CHECK(parseTimeArg("+30min", now) == now + 30 * USEC_PER_MIN);
    CHECK(parseTimeArg("1 hour ago", now) == now - USEC_PER_HOUR);
    CHECK(parseTimeArg("1h 30min ago", now) == now - 90 * USEC_PER_MIN);
    CHECK(parseTimeArg("30min left", now) == now + 30 * USEC_PER_MIN);
    // As before: a bare duration is that long ago.
    CHECK(parseTimeArg("2h", now) == now - 2 * USEC_PER_HOUR);
    CHECK(parseTimeArg("1h30m", now) == now - 90 * USEC_PER_MIN);
}

TEST_CASE("a time argument with a zone or an epoch reads the same in every time zone") {
    const Usec now = 1795558437 * USEC_PER_SEC;
    for (const char* tz : {"UTC", "Europe/Berlin", "America/New_York"}) {
        const Zone zone(tz);
        CAPTURE(tz);
        CHECK(parseTimeArg("2026-11-24T20:13:57Z", now) == now - 2 * USEC_PER_HOUR);
        CHECK(parseTimeArg("2026-11-24 21:13:57+01:00", now) == now - 2 * USEC_PER_HOUR);
        CHECK(parseTimeArg("2026-11-24 15:13:57 -0500", now) == now - 2 * USEC_PER_HOUR);
        CHECK(parseTimeArg("2026-11-24 20:13:57 UTC", now) == now - 2 * USEC_PER_HOUR);
        CHECK(parseTimeArg("@1795558437", now) == now);
        CHECK(parseTimeArg("@1795558437.25", now) == now + 250 * USEC_PER_MSEC);
        CHECK(parseTimeArg("@0", now) == 0);
    }
}

TEST_CASE("malformed time arguments are refused") {
    const Usec now = 1795558437 * USEC_PER_SEC;
    for (const char* text : {"", " ", "2", "soon", "ago", "-", "+", "+x", "@", "@1.", "@-1",
                             "1 hour", "tomorrow morning", "2026-12-01 25:00", "2026-02-30",
                             "25:00", "2026-12-01 14:00 CET", "now+1h", "-1"}) {
        CAPTURE(text);
        if (std::string_view(text) == "1 hour") {
            CHECK(parseTimeArg(text, now) == now - USEC_PER_HOUR);  // a bare duration: ago
            continue;
        }
        CHECK_FALSE(parseTimeArg(text, now));
    }
}

TEST_CASE("a local time in Berlin reads in CET or CEST as the date says") {
    const Zone zone("Europe/Berlin");
    const Usec now = utc("2026-12-01T10:00:00Z");
    CHECK(parseTimeArg("2026-12-01 14:00", now) == utc("2026-12-01T13:00:00Z"));
    CHECK(parseTimeArg("2026-12-01 14:24:51", now) == utc("2026-12-01T13:24:51Z"));
    CHECK(parseTimeArg("2026-12-01T14:00:00.5", now) == utc("2026-12-01T13:00:00.5Z"));
    CHECK(parseTimeArg("2026-07-01 14:00", now) == utc("2026-07-01T12:00:00Z"));
    CHECK(parseTimeArg("2026-12-01", now) == utc("2026-11-30T23:00:00Z"));
    CHECK(parseTimeArg("14:00", now) == utc("2026-12-01T13:00:00Z"));
    CHECK(parseTimeArg("today", now) == utc("2026-11-30T23:00:00Z"));
    CHECK(parseTimeArg("yesterday", now) == utc("2026-11-29T23:00:00Z"));
    CHECK(parseTimeArg("tomorrow", now) == utc("2026-12-01T23:00:00Z"));
    // Half past midnight in Berlin is still the day before in UTC.
    CHECK(parseTimeArg("today", utc("2026-12-01T23:30:00Z")) == utc("2026-12-01T23:00:00Z"));
}

TEST_CASE(
    "Berlin's DST changes: a skipped time reads with the offset before, a repeated one "
    "is the first") {
    const Zone zone("Europe/Berlin");
    const Usec now = utc("2026-03-29T12:00:00Z");
    // 2026-03-29 02:00 CET became 03:00 CEST (01:00Z).
    CHECK(parseTimeArg("2026-03-29 01:59:59", now) == utc("2026-03-29T00:59:59Z"));
    CHECK(parseTimeArg("2026-03-29 02:30", now) == utc("2026-03-29T01:30:00Z"));
    CHECK(parseTimeArg("2026-03-29 03:00", now) == utc("2026-03-29T01:00:00Z"));
    // A 23-hour day: midnight before and after the change.
    CHECK(parseTimeArg("today", now) == utc("2026-03-28T23:00:00Z"));
    CHECK(parseTimeArg("tomorrow", now) == utc("2026-03-29T22:00:00Z"));
    CHECK(parseTimeArg("yesterday", now) == utc("2026-03-27T23:00:00Z"));
    // 2026-10-25 03:00 CEST became 02:00 CET (01:00Z): 02:30 happened twice.
    CHECK(parseTimeArg("2026-10-25 02:30", now) == utc("2026-10-25T00:30:00Z"));
    CHECK(parseTimeArg("2026-10-25 02:30 +01:00", now) == utc("2026-10-25T01:30:00Z"));
    CHECK(parseTimeArg("2026-10-25 03:00", now) == utc("2026-10-25T02:00:00Z"));
    CHECK(formatTime(utc("2026-10-25T00:30:00Z"), false) == "2026-10-25 02:30:00.000 +02:00");
    CHECK(formatTime(utc("2026-10-25T01:30:00Z"), false) == "2026-10-25 02:30:00.000 +01:00");
}

TEST_CASE("New York's DST changes read the same way") {
    const Zone zone("America/New_York");
    const Usec now = utc("2026-12-01T10:00:00Z");
    CHECK(parseTimeArg("2026-12-01 09:00", now) == utc("2026-12-01T14:00:00Z"));
    CHECK(parseTimeArg("2026-07-01 09:00", now) == utc("2026-07-01T13:00:00Z"));
    // 5:00 in UTC is still November 30 in New York.
    CHECK(parseTimeArg("today", utc("2026-12-01T04:00:00Z")) == utc("2026-11-30T05:00:00Z"));
    // 2026-03-08 02:00 EST became 03:00 EDT (07:00Z).
    CHECK(parseTimeArg("2026-03-08 02:30", now) == utc("2026-03-08T07:30:00Z"));
    CHECK(parseTimeArg("2026-03-08 03:30", now) == utc("2026-03-08T07:30:00Z"));
    // 2026-11-01 02:00 EDT became 01:00 EST (06:00Z): 01:30 happened twice.
    CHECK(parseTimeArg("2026-11-01 01:30", now) == utc("2026-11-01T05:30:00Z"));
    CHECK(parseTimeArg("2026-11-01 01:30 -05:00", now) == utc("2026-11-01T06:30:00Z"));
    CHECK(formatTime(utc("2026-11-01T06:30:00Z"), false) == "2026-11-01 01:30:00.000 -05:00");
    CHECK(formatTime(utc("2026-11-01T05:30:00Z"), false) == "2026-11-01 01:30:00.000 -04:00");
}

TEST_CASE("table times are local with their offset, or UTC when asked") {
    const Usec t = utc("2026-12-01T13:00:00.123456Z");
    {
        const Zone zone("Europe/Berlin");
        CHECK(formatTime(t, false) == "2026-12-01 14:00:00.123 +01:00");
        CHECK(formatTime(utc("2026-07-01T12:00:00Z"), false) == "2026-07-01 14:00:00.000 +02:00");
        CHECK(formatTime(t, true) == "2026-12-01 13:00:00.123 UTC");
    }
    {
        const Zone zone("America/New_York");
        CHECK(formatTime(t, false) == "2026-12-01 08:00:00.123 -05:00");
    }
    CHECK(formatTime(-1 * USEC_PER_MSEC, true) == "1969-12-31 23:59:59.999 UTC");
}

TEST_CASE("a table time reads back as a time argument, to the millisecond") {
    for (const char* tz : {"Europe/Berlin", "America/New_York", "UTC"}) {
        const Zone zone(tz);
        CAPTURE(tz);
        for (const Usec t : {utc("2026-12-01T13:00:00.123Z"), utc("2026-10-25T00:30:00Z"),
                             utc("2026-10-25T01:30:00Z"), utc("2026-11-01T05:30:00.999Z"),
                             utc("2026-11-01T06:30:00Z")}) {
            CAPTURE(t);
            CHECK(parseTimeArg(formatTime(t, false), 0) == t);
            CHECK(parseTimeArg(formatTime(t, true), 0) == t);
        }
    }
}

TEST_CASE("the system clock reads a sane wall time and a moving monotonic time") {
    const SystemClock clock;
    CHECK(clock.realtime() > 1600000000 * USEC_PER_SEC);
    const Usec a = clock.monotonic();
    const Usec b = clock.monotonic();
    CHECK(b >= a);
}
