#include "core/time.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>
#include <utility>

namespace cerberus::core {

namespace {

constexpr Usec USEC_MAX = std::numeric_limits<Usec>::max();

// systemd.time(7)'s spellings, except months and years (their length varies).
std::optional<Usec> unitScale(std::string_view unit) {
    static constexpr std::array<std::pair<std::string_view, Usec>, 22> UNITS{{
        {"us", 1},
        {"usec", 1},
        {"ms", USEC_PER_MSEC},
        {"msec", USEC_PER_MSEC},
        {"s", USEC_PER_SEC},
        {"sec", USEC_PER_SEC},
        {"second", USEC_PER_SEC},
        {"seconds", USEC_PER_SEC},
        {"m", USEC_PER_MIN},
        {"min", USEC_PER_MIN},
        {"minute", USEC_PER_MIN},
        {"minutes", USEC_PER_MIN},
        {"h", USEC_PER_HOUR},
        {"hr", USEC_PER_HOUR},
        {"hour", USEC_PER_HOUR},
        {"hours", USEC_PER_HOUR},
        {"d", USEC_PER_DAY},
        {"day", USEC_PER_DAY},
        {"days", USEC_PER_DAY},
        {"w", USEC_PER_WEEK},
        {"week", USEC_PER_WEEK},
        {"weeks", USEC_PER_WEEK},
    }};
    for (const auto& [name, scale] : UNITS)
        if (name == unit) return scale;
    return std::nullopt;
}

Usec nowOf(clockid_t id) {
    timespec ts{};
    (void)clock_gettime(id, &ts);  // fails only for a clock this program never asks for
    return static_cast<Usec>(ts.tv_sec) * USEC_PER_SEC + ts.tv_nsec / 1000;
}

bool isDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool isSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
    while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
    return s;
}

void skipSpaces(std::string_view& s) {
    while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
}

bool readInt(std::string_view& s, std::size_t digits, int& out) {
    if (s.size() < digits) return false;
    // from_chars would take a sign: "T-1:00" must not read as hour -1.
    for (std::size_t i = 0; i < digits; ++i)
        if (!isDigit(s[i])) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + digits, out);
    if (ec != std::errc{} || p != s.data() + digits) return false;
    s.remove_prefix(digits);
    return true;
}

bool expect(std::string_view& s, char c) {
    if (s.empty() || s.front() != c) return false;
    s.remove_prefix(1);
    return true;
}

// "12", "1.5", ".5", read exactly so that scaled() cuts only below a microsecond.
struct Number {
    std::uint64_t whole = 0;
    std::uint64_t frac = 0;      // the digits after the point, as an integer
    std::uint64_t frac_den = 1;  // 10^(their count), at most 10^18
};

// nullopt when no digit is there or the whole part passes Usec.
std::optional<Number> readNumber(std::string_view& s) {
    Number n;
    std::size_t digits = 0;
    while (!s.empty() && isDigit(s.front())) {
        const auto digit = static_cast<std::uint64_t>(s.front() - '0');
        if (n.whole > (static_cast<std::uint64_t>(USEC_MAX) - digit) / 10) return std::nullopt;
        n.whole = n.whole * 10 + digit;
        s.remove_prefix(1);
        ++digits;
    }
    if (!s.empty() && s.front() == '.') {
        s.remove_prefix(1);
        std::size_t frac_digits = 0;
        while (!s.empty() && isDigit(s.front())) {
            // Past 18 digits a fraction is finer than any unit's microsecond.
            if (n.frac_den < 1000000000000000000ULL) {
                n.frac = n.frac * 10 + static_cast<unsigned>(s.front() - '0');
                n.frac_den *= 10;
            }
            s.remove_prefix(1);
            ++frac_digits;
        }
        if (frac_digits == 0) return std::nullopt;
        digits += frac_digits;
    }
    if (digits == 0) return std::nullopt;
    return n;
}

std::optional<Usec> scaled(const Number& n, Usec scale) {
    Usec whole = 0;
    if (__builtin_mul_overflow(static_cast<Usec>(n.whole), scale, &whole)) return std::nullopt;
    // frac / den * scale, rounded down: an 18-digit fraction times a week's microseconds
    // needs more than 64 bits.
    using Wide = unsigned __int128;
    const auto frac = static_cast<Usec>(static_cast<Wide>(n.frac) * static_cast<Wide>(scale) /
                                        static_cast<Wide>(n.frac_den));
    if (whole > USEC_MAX - frac) return std::nullopt;
    return whole + frac;
}

// timegm() would quietly turn February 30 into March 2.
int daysInMonth(int year, int mon) {
    static constexpr int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 2 && leap ? 29 : DAYS[mon - 1];
}

// Seconds east of UTC in the local time zone at `t`.
std::optional<long> localOffset(time_t t) {
    std::tm tm{};
    if (!localtime_r(&t, &tm)) return std::nullopt;
    return tm.tm_gmtoff;
}

// A local wall-clock time, given as the seconds it would be in UTC, to the instant it names.
std::optional<time_t> fromLocal(time_t wall) {
    constexpr time_t DAY = 24 * 60 * 60;
    const auto before = localOffset(wall - DAY);
    const auto after = localOffset(wall + DAY);
    if (!before || !after) return std::nullopt;
    const time_t a = wall - *before;
    const time_t b = wall - *after;
    const auto off_a = localOffset(a);
    const auto off_b = localOffset(b);
    const bool valid_a = off_a && *off_a == *before;
    const bool valid_b = off_b && *off_b == *after;
    if (valid_a && valid_b) return std::min(a, b);  // occurs twice: the first
    if (valid_b) return b;
    return a;  // valid, or skipped by a change: the offset before it
}

struct Fields {
    int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
    Usec frac = 0;
};

time_t asUtc(const Fields& f) {
    std::tm tm{};
    tm.tm_year = f.year - 1900;
    tm.tm_mon = f.mon - 1;
    tm.tm_mday = f.day;
    tm.tm_hour = f.hour;
    tm.tm_min = f.min;
    tm.tm_sec = f.sec;
    return timegm(&tm);
}

// "Z", "UTC", "+01:00", "+0100", "-04", after an optional space. Moves `s` past it.
std::optional<long> readZone(std::string_view& s) {
    std::string_view z = s;
    skipSpaces(z);
    if (z == "Z" || z == "UTC") {
        s = {};
        return 0;
    }
    if (z.empty() || (z.front() != '+' && z.front() != '-')) return std::nullopt;
    const long sign = z.front() == '+' ? 1 : -1;
    z.remove_prefix(1);
    int oh = 0, om = 0;
    if (!readInt(z, 2, oh)) return std::nullopt;
    if (!z.empty() && z.front() == ':') z.remove_prefix(1);
    if (!z.empty() && !readInt(z, 2, om)) return std::nullopt;
    if (oh > 23 || om > 59) return std::nullopt;
    s = z;
    return sign * (oh * 3600L + om * 60L);
}

// "HH:MM[:SS[.frac]]".
bool readClock(std::string_view& s, Fields& f) {
    if (!readInt(s, 2, f.hour) || !expect(s, ':') || !readInt(s, 2, f.min)) return false;
    if (s.empty() || s.front() != ':') return true;
    s.remove_prefix(1);
    if (!readInt(s, 2, f.sec)) return false;
    if (s.empty() || s.front() != '.') return true;
    s.remove_prefix(1);
    Usec scale = 100000;
    std::size_t digits = 0;
    while (!s.empty() && isDigit(s.front())) {
        f.frac += (s.front() - '0') * scale;
        scale /= 10;
        s.remove_prefix(1);
        ++digits;
    }
    return digits > 0;
}

enum class Zone { Utc, Local };

// A date with an optional time and zone, or (when `now_usec` is given) a time of today.
std::optional<Usec> parseDateTime(std::string_view s, Zone default_zone,
                                  std::optional<Usec> now_usec) {
    Fields f;
    bool has_date = false;
    if (s.size() >= 5 && isDigit(s[0]) && s[4] == '-') {
        if (!readInt(s, 4, f.year) || !expect(s, '-') || !readInt(s, 2, f.mon) || !expect(s, '-') ||
            !readInt(s, 2, f.day))
            return std::nullopt;
        has_date = true;
        if (!s.empty() && (s.front() == 'T' || s.front() == ' ')) {
            std::string_view rest = s.substr(1);
            skipSpaces(rest);
            // "2026-12-01 UTC" is a date with a zone, not a date and a time.
            if (!rest.empty() && isDigit(rest.front())) {
                s = rest;
                if (!readClock(s, f)) return std::nullopt;
            }
        }
    } else if (now_usec) {
        if (!readClock(s, f)) return std::nullopt;
    } else {
        return std::nullopt;
    }
    std::optional<long> offset;
    if (!s.empty()) {
        offset = readZone(s);
        if (!offset || !s.empty()) return std::nullopt;
    }
    if (!has_date) {
        // Today where the time is read: in its zone, else the local one.
        const Usec now = *now_usec;
        const time_t t = static_cast<time_t>(now / USEC_PER_SEC) + (offset ? *offset : 0);
        std::tm tm{};
        if (!(offset || default_zone == Zone::Utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
            return std::nullopt;
        f.year = tm.tm_year + 1900;
        f.mon = tm.tm_mon + 1;
        f.day = tm.tm_mday;
    }
    if (f.mon < 1 || f.mon > 12 || f.day < 1 || f.day > daysInMonth(f.year, f.mon) || f.hour > 23 ||
        f.min > 59 || f.sec > 60)
        return std::nullopt;
    time_t t = asUtc(f);
    if (offset) {
        t -= *offset;
    } else if (default_zone == Zone::Local) {
        const auto local = fromLocal(t);
        if (!local) return std::nullopt;
        t = *local;
    }
    return static_cast<Usec>(t) * USEC_PER_SEC + f.frac;
}

// Local midnight `days` after today's.
std::optional<Usec> midnight(Usec now_usec, int days) {
    const time_t now = static_cast<time_t>(now_usec / USEC_PER_SEC);
    std::tm tm{};
    if (!localtime_r(&now, &tm)) return std::nullopt;
    Fields f{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday + days, 0, 0, 0, 0};
    const auto local = fromLocal(asUtc(f));  // timegm() carries day 0 or 32 over
    if (!local) return std::nullopt;
    return static_cast<Usec>(*local) * USEC_PER_SEC;
}

std::optional<Usec> plus(Usec now_usec, std::optional<Usec> span, int sign) {
    if (!span) return std::nullopt;
    if (sign > 0) {
        if (now_usec > 0 && *span > USEC_MAX - now_usec) return std::nullopt;
        return now_usec + *span;
    }
    if (now_usec < 0 && *span > now_usec - std::numeric_limits<Usec>::min()) return std::nullopt;
    return now_usec - *span;
}

// Floor division: before 1970 the remainder would otherwise come out negative.
std::pair<time_t, int> secondsAndMillis(Usec ts_usec) {
    Usec secs = ts_usec / USEC_PER_SEC;
    Usec rem = ts_usec % USEC_PER_SEC;
    if (rem < 0) {
        rem += USEC_PER_SEC;
        --secs;
    }
    return {static_cast<time_t>(secs), static_cast<int>(rem / USEC_PER_MSEC)};
}

}  // namespace

std::optional<Usec> parseDuration(std::string_view text) {
    std::string_view s = trimmed(text);
    if (s.empty()) return std::nullopt;
    Usec total = 0;
    while (!s.empty()) {
        const auto number = readNumber(s);
        if (!number) return std::nullopt;
        skipSpaces(s);
        std::size_t u = 0;
        while (u < s.size() && std::isalpha(static_cast<unsigned char>(s[u]))) ++u;
        const auto scale = unitScale(s.substr(0, u));
        if (!scale) return std::nullopt;
        s.remove_prefix(u);
        skipSpaces(s);
        const auto part = scaled(*number, *scale);
        if (!part || total > USEC_MAX - *part) return std::nullopt;
        total += *part;
    }
    return total;
}

std::string formatDuration(Usec usec, Usec accuracy_usec) {
    std::string out;
    // Unsigned magnitude: negating the most negative value would overflow.
    std::uint64_t rest = static_cast<std::uint64_t>(usec);
    if (usec < 0) {
        out = "-";
        rest = 0 - rest;
    }
    if (accuracy_usec > 1) {
        const auto acc = static_cast<std::uint64_t>(accuracy_usec);
        const std::uint64_t down = rest - rest % acc;
        rest = rest % acc >= (acc + 1) / 2 && down <= UINT64_MAX - acc ? down + acc : down;
    }
    if (rest == 0) return "0s";
    static constexpr struct {
        std::uint64_t scale;
        const char* name;
        int digits;  // of a fraction of it, in microseconds
    } PARTS[] = {{USEC_PER_WEEK, "w", 0},
                 {USEC_PER_DAY, "d", 0},
                 {USEC_PER_HOUR, "h", 0},
                 {USEC_PER_MIN, "min", 0},
                 {USEC_PER_SEC, "s", 6},
                 {USEC_PER_MSEC, "ms", 3},
                 {1, "us", 0}};
    bool first = true;
    for (const auto& part : PARTS) {
        if (rest < part.scale) continue;
        if (!first) out += ' ';
        first = false;
        out += std::to_string(rest / part.scale);
        rest %= part.scale;
        if (part.digits > 0 && rest > 0) {
            // Seconds and milliseconds take the rest as a fraction: "1.5s", not "1s 500ms".
            std::string digits = std::to_string(rest);
            digits.insert(0, static_cast<std::size_t>(part.digits) - digits.size(), '0');
            while (digits.back() == '0') digits.pop_back();
            out += '.';
            out += digits;
            rest = 0;
        }
        out += part.name;
        if (rest == 0) break;
    }
    return out;
}

std::optional<Usec> parseIsoTime(std::string_view s) {
    return parseDateTime(s, Zone::Utc, std::nullopt);
}

std::string formatIsoTime(Usec ts_usec) {
    const auto [t, ms] = secondsAndMillis(ts_usec);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%03dZ", ms);
    return std::string(buf, n) + frac;
}

std::optional<Usec> parseTimeArg(std::string_view text, Usec now_usec) {
    const std::string_view s = trimmed(text);
    if (s.empty()) return std::nullopt;
    if (s == "now") return now_usec;
    if (s == "today") return midnight(now_usec, 0);
    if (s == "yesterday") return midnight(now_usec, -1);
    if (s == "tomorrow") return midnight(now_usec, 1);
    if (s.front() == '@') {
        std::string_view rest = s.substr(1);
        const auto number = readNumber(rest);
        if (!number || !rest.empty()) return std::nullopt;
        return scaled(*number, USEC_PER_SEC);
    }
    if (s.front() == '+') return plus(now_usec, parseDuration(s.substr(1)), 1);
    if (s.front() == '-') return plus(now_usec, parseDuration(s.substr(1)), -1);
    if (s.ends_with(" ago")) return plus(now_usec, parseDuration(s.substr(0, s.size() - 4)), -1);
    if (s.ends_with(" left")) return plus(now_usec, parseDuration(s.substr(0, s.size() - 5)), 1);
    if (const auto ago = parseDuration(s)) return plus(now_usec, ago, -1);
    return parseDateTime(s, Zone::Local, now_usec);
}

std::string formatTime(Usec ts_usec, bool utc) {
    const auto [t, ms] = secondsAndMillis(ts_usec);
    std::tm tm{};
    if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm))) return formatIsoTime(ts_usec);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
    char tail[32];
    if (utc) {
        std::snprintf(tail, sizeof tail, ".%03d UTC", ms);
    } else {
        const long off = tm.tm_gmtoff;
        const long mag = off < 0 ? -off : off;
        std::snprintf(tail, sizeof tail, ".%03d %c%02ld:%02ld", ms, off < 0 ? '-' : '+', mag / 3600,
                      mag % 3600 / 60);
    }
    return std::string(buf, n) + tail;
}

Usec SystemClock::realtime() const { return nowOf(CLOCK_REALTIME); }
Usec SystemClock::monotonic() const { return nowOf(CLOCK_MONOTONIC); }

}  // namespace cerberus::core
