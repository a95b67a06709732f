#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cerberus::core {

// One time type everywhere: microseconds, wall clock (ts_usec) or monotonic (mono_usec).
using Usec = std::int64_t;

inline constexpr Usec USEC_PER_MSEC = 1000;
inline constexpr Usec USEC_PER_SEC = 1000 * USEC_PER_MSEC;
inline constexpr Usec USEC_PER_MIN = 60 * USEC_PER_SEC;
inline constexpr Usec USEC_PER_HOUR = 60 * USEC_PER_MIN;
inline constexpr Usec USEC_PER_DAY = 24 * USEC_PER_HOUR;
inline constexpr Usec USEC_PER_WEEK = 7 * USEC_PER_DAY;

// What parseDuration() reads, for the sentence that refuses a value.
inline constexpr std::string_view DURATION_EXAMPLES =
    "a number and a unit such as 500ms, 30s, 5min, 1.5h, 1h 30min, 2d or 1w";
// What parseTimeArg() reads, likewise.
inline constexpr std::string_view TIME_EXAMPLES =
    "a time such as 'now', 'today', 'yesterday', '-1h', '2 hours ago', '2026-12-01 14:00' "
    "(local time), '2026-12-01T13:00:00Z' or '@1795558437'";

// A time span as systemd.time(7) writes it: numbers with units (us usec, ms msec, s sec
// second(s), m min minute(s), h hr hour(s), d day(s), w week(s)), summed with or without
// spaces ("1h 30min", "1h30m"), fractions allowed ("1.5h"). A number alone has no unit and
// is refused. nullopt when malformed, negative or beyond Usec.
std::optional<Usec> parseDuration(std::string_view text);
// The short readable spelling systemd prints, largest unit first: "1.5s", "2min 3s",
// "1h 30min", "1w 2d", 0 -> "0s". Rounded to `accuracy_usec` (1: exact, and
// parseDuration() reads it back to the same value).
std::string formatDuration(Usec usec, Usec accuracy_usec = 1);

// Machine time: "2026-11-24T22:13:57Z", with fractional seconds or a "+01:00" offset, or a
// date alone; a time without an offset is UTC.
std::optional<Usec> parseIsoTime(std::string_view text);
// "2026-11-24T22:13:57.123Z" (milliseconds, UTC): payloads and JSON output.
std::string formatIsoTime(Usec ts_usec);

// A time an operator types, as systemd.time(7) reads it: "now", "today", "yesterday",
// "tomorrow" (midnight, local time), "+30min", "-1h", "1 hour ago", "30min left",
// "@EPOCH[.frac]", "YYYY-MM-DD[ HH:MM[:SS[.frac]]]" or "HH:MM[:SS]" (today) in the local
// time zone (TZ) unless an offset, "Z" or "UTC" follows, and, as before, a bare duration
// ("2h": that long ago). A local time that a DST change skips is read with the offset in
// force before the change; one that occurs twice is the first of the two.
std::optional<Usec> parseTimeArg(std::string_view text, Usec now_usec);
// For tables: "2026-12-01 14:00:00.123 +01:00" in the local time zone, or
// "2026-12-01 13:00:00.123 UTC" when `utc`. parseTimeArg() reads both back.
std::string formatTime(Usec ts_usec, bool utc);

class Clock {
public:
    virtual ~Clock() = default;
    virtual Usec realtime() const = 0;
    virtual Usec monotonic() const = 0;
};

class SystemClock final : public Clock {
public:
    Usec realtime() const override;
    Usec monotonic() const override;
};

}  // namespace cerberus::core
