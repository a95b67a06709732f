#include "core/time.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>

namespace cerberus::core {

namespace {

std::optional<Usec> unitScale(std::string_view unit) {
    if (unit == "us") return 1;
    if (unit == "ms") return USEC_PER_MSEC;
    if (unit == "s") return USEC_PER_SEC;
    if (unit == "m") return USEC_PER_MIN;
    if (unit == "h") return USEC_PER_HOUR;
    if (unit == "d") return USEC_PER_DAY;
    return std::nullopt;
}

Usec nowOf(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return static_cast<Usec>(ts.tv_sec) * USEC_PER_SEC + ts.tv_nsec / 1000;
}

bool readInt(std::string_view& s, std::size_t digits, int& out) {
    if (s.size() < digits) return false;
    // from_chars would take a sign: "T-1:00" must not read as hour -1.
    for (std::size_t i = 0; i < digits; ++i)
        if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + digits, out);
    if (ec != std::errc{} || p != s.data() + digits) return false;
    s.remove_prefix(digits);
    return true;
}

// timegm() would quietly turn February 30 into March 2.
int daysInMonth(int year, int mon) {
    static constexpr int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return mon == 2 && leap ? 29 : DAYS[mon - 1];
}

bool expect(std::string_view& s, char c) {
    if (s.empty() || s.front() != c) return false;
    s.remove_prefix(1);
    return true;
}

}  // namespace

std::optional<Usec> parseDuration(std::string_view text) {
    if (text.empty()) return std::nullopt;
    Usec total = 0;
    while (!text.empty()) {
        std::size_t n = 0;
        while (n < text.size() && std::isdigit(static_cast<unsigned char>(text[n]))) ++n;
        if (n == 0) return std::nullopt;
        Usec value = 0;
        auto [p, ec] = std::from_chars(text.data(), text.data() + n, value);
        if (ec != std::errc{}) return std::nullopt;
        text.remove_prefix(n);
        std::size_t u = 0;
        while (u < text.size() && std::isalpha(static_cast<unsigned char>(text[u]))) ++u;
        auto scale = unitScale(text.substr(0, u));
        if (!scale) return std::nullopt;
        text.remove_prefix(u);
        if (value > std::numeric_limits<Usec>::max() / *scale) return std::nullopt;
        const Usec part = value * *scale;
        if (total > std::numeric_limits<Usec>::max() - part) return std::nullopt;
        total += part;
    }
    return total;
}

std::string formatDuration(Usec usec) {
    if (usec == 0) return "0s";
    std::string out;
    // Unsigned magnitude: negating the most negative value would overflow.
    std::uint64_t rest = static_cast<std::uint64_t>(usec);
    if (usec < 0) {
        out = "-";
        rest = 0 - rest;
    }
    const struct {
        Usec scale;
        const char* name;
    } parts[] = {{USEC_PER_DAY, "d"}, {USEC_PER_HOUR, "h"},  {USEC_PER_MIN, "m"},
                 {USEC_PER_SEC, "s"}, {USEC_PER_MSEC, "ms"}, {1, "us"}};
    for (const auto& part : parts) {
        const auto scale = static_cast<std::uint64_t>(part.scale);
        if (rest >= scale) {
            out += std::to_string(rest / scale) + part.name;
            rest %= scale;
        }
    }
    return out;
}

std::optional<Usec> parseIsoTime(std::string_view s) {
    int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
    if (!readInt(s, 4, year) || !expect(s, '-') || !readInt(s, 2, mon) || !expect(s, '-') ||
        !readInt(s, 2, day))
        return std::nullopt;
    Usec frac = 0;
    Usec offset = 0;
    if (!s.empty()) {
        if (s.front() != 'T' && s.front() != ' ') return std::nullopt;
        s.remove_prefix(1);
        if (!readInt(s, 2, hour) || !expect(s, ':') || !readInt(s, 2, min)) return std::nullopt;
        if (!s.empty() && s.front() == ':') {
            s.remove_prefix(1);
            if (!readInt(s, 2, sec)) return std::nullopt;
            if (!s.empty() && s.front() == '.') {
                s.remove_prefix(1);
                Usec scale = 100000;
                std::size_t digits = 0;
                while (!s.empty() && std::isdigit(static_cast<unsigned char>(s.front()))) {
                    frac += (s.front() - '0') * scale;
                    scale /= 10;
                    s.remove_prefix(1);
                    ++digits;
                }
                if (digits == 0) return std::nullopt;
            }
        }
        if (!s.empty()) {
            if (s == "Z") {
                s = {};
            } else if (s.front() == '+' || s.front() == '-') {
                const int sign = s.front() == '+' ? 1 : -1;
                s.remove_prefix(1);
                int oh = 0, om = 0;
                if (!readInt(s, 2, oh)) return std::nullopt;
                if (!s.empty() && s.front() == ':') s.remove_prefix(1);
                if (!s.empty() && !readInt(s, 2, om)) return std::nullopt;
                if (oh > 23 || om > 59) return std::nullopt;
                offset = sign * (oh * USEC_PER_HOUR + om * USEC_PER_MIN);
            }
            if (!s.empty()) return std::nullopt;
        }
    }
    if (mon < 1 || mon > 12 || day < 1 || day > daysInMonth(year, mon) || hour > 23 || min > 59 ||
        sec > 60)
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    const time_t t = timegm(&tm);
    return static_cast<Usec>(t) * USEC_PER_SEC + frac - offset;
}

std::string formatIsoTime(Usec ts_usec) {
    // Floor division: before 1970 the remainder would otherwise come out negative.
    Usec secs = ts_usec / USEC_PER_SEC;
    Usec rem = ts_usec % USEC_PER_SEC;
    if (rem < 0) {
        rem += USEC_PER_SEC;
        --secs;
    }
    const time_t t = static_cast<time_t>(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char ms[16];
    std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(rem / USEC_PER_MSEC));
    return std::string(buf, n) + ms;
}

std::optional<Usec> parseTimeArg(std::string_view text, Usec now_usec) {
    if (auto ago = parseDuration(text)) return now_usec - *ago;
    return parseIsoTime(text);
}

Usec SystemClock::realtime() const { return nowOf(CLOCK_REALTIME); }
Usec SystemClock::monotonic() const { return nowOf(CLOCK_MONOTONIC); }

}  // namespace cerberus::core
