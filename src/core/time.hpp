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

// "500ms", "30s", "5m", "2h", "1d" (and sums like "1h30m"). nullopt when malformed.
std::optional<Usec> parseDuration(std::string_view text);
// The shortest exact spelling: 90 s -> "1m30s", 0 -> "0s".
std::string formatDuration(Usec usec);

// "2026-11-24T22:13:57Z" or with fractional seconds / "+01:00" offset, or a date alone.
std::optional<Usec> parseIsoTime(std::string_view text);
// "2026-11-24T22:13:57.123Z" (milliseconds, UTC).
std::string formatIsoTime(Usec ts_usec);

// A point in time given on the command line: a duration ago ("2h") or ISO 8601.
std::optional<Usec> parseTimeArg(std::string_view text, Usec now_usec);

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
