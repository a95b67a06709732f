#include "cli/timeline.hpp"

#include <fmt/core.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace cerberus::cli {

namespace {

using core::Event;
using core::Usec;

bool endsRun(Event event) {
    return event == Event::Crash || event == Event::Stop || event == Event::Fail ||
           event == Event::GiveUp;
}

bool isCrashLike(Event event) {
    return event == Event::Crash || event == Event::Fail || event == Event::GiveUp;
}

// The display width of a UTF-8 string, one column per code point (block characters and
// the ellipsis are narrow).
std::size_t displayWidth(std::string_view text) {
    std::size_t width = 0;
    for (const char c : text)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
    return width;
}

// `text` cut to `width` columns, an ellipsis marking the cut.
std::string fitTo(const std::string& text, std::size_t width) {
    if (displayWidth(text) <= width) return text;
    std::string out;
    std::size_t used = 0;
    for (std::size_t i = 0; i < text.size() && used + 1 < width; ++i) {
        out += text[i];
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++used;
        // Finish a code point before counting the next.
        while (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80)
            out += text[++i];
    }
    return out + "…";
}

std::string padTo(const std::string& text, std::size_t width) {
    const std::size_t used = displayWidth(text);
    return used >= width ? text : text + std::string(width - used, ' ');
}

// "2026-12-01 14:24:51 +01:00", as history's tables write times: whole seconds are enough
// for an axis, but for a span under a minute, whose ends may share their second.
std::string axisTime(Usec ts_usec, Usec span_usec, bool utc) {
    std::string text = core::formatTime(ts_usec, utc);
    if (span_usec < core::USEC_PER_MIN) return text;
    if (const auto dot = text.find('.'); dot != std::string::npos)
        text.erase(dot, text.find(' ', dot) - dot);
    return text;
}

// A column's length rounded the way people say it: "250ms", "12s", "2m", "1h30m".
std::string roughDuration(Usec usec) {
    if (usec < core::USEC_PER_SEC)
        return core::formatDuration(std::max<Usec>(1, usec / core::USEC_PER_MSEC) *
                                    core::USEC_PER_MSEC);
    if (usec < core::USEC_PER_MIN)
        return core::formatDuration(usec / core::USEC_PER_SEC * core::USEC_PER_SEC);
    if (usec < core::USEC_PER_HOUR)
        return core::formatDuration(usec / core::USEC_PER_SEC * core::USEC_PER_SEC);
    return core::formatDuration(usec / core::USEC_PER_MIN * core::USEC_PER_MIN);
}

struct Glyph {
    std::string_view text;
    std::string_view color;  // ANSI SGR
};

Glyph glyphOf(Cell cell) {
    switch (cell) {
    case Cell::Crash: return {"█", "31"};
    case Cell::Restart: return {"▒", "33"};
    case Cell::Up: return {"▁", "32"};
    case Cell::Empty: return {"·", "2"};
    }
    return {"?", ""};
}

constexpr std::size_t LABEL_MIN = 8;

}  // namespace

int Scale::column(Usec ts_usec) const {
    if (ts_usec <= from_usec) return 0;
    if (ts_usec >= to_usec) return columns - 1;
    // In long double: a span of decades times a few thousand columns overflows 64 bits.
    const long double offset = static_cast<long double>(ts_usec - from_usec) * columns /
                               static_cast<long double>(to_usec - from_usec);
    return std::clamp(static_cast<int>(offset), 0, columns - 1);
}

double Scale::position(Usec ts_usec) const {
    return static_cast<double>(ts_usec - from_usec) * columns /
           static_cast<double>(to_usec - from_usec);
}

Usec Scale::columnStart(int col) const {
    return from_usec +
           static_cast<Usec>(static_cast<long double>(to_usec - from_usec) * col / columns);
}

std::vector<Interval> upIntervals(std::span<const LaneEvent> events, const Scale& scale,
                                  Usec up_until_usec) {
    std::vector<Interval> out;
    // A first event that ends a run: the unit was up when the span began.
    bool up =
        !events.empty() && endsRun(events.front().event) && events.front().event != Event::GiveUp;
    Usec up_since = scale.from_usec;
    for (const auto& e : events) {
        if (e.event == Event::Start) {
            if (!up) up_since = e.ts_usec;
            up = true;
        } else if (endsRun(e.event)) {
            if (up && e.ts_usec > up_since) out.push_back({up_since, e.ts_usec});
            up = false;
        }
    }
    const Usec end = std::min(up_until_usec, scale.to_usec);
    if (up && end > up_since) out.push_back({up_since, end});
    return out;
}

std::vector<Cell> bucketCells(std::span<const LaneEvent> events, const Scale& scale,
                              Usec up_until_usec) {
    std::vector<Cell> cells(static_cast<std::size_t>(scale.columns), Cell::Empty);
    auto raise = [&cells](int col, Cell cell) {
        auto& slot = cells[static_cast<std::size_t>(col)];
        slot = std::max(slot, cell);
    };
    for (const auto& run : upIntervals(events, scale, up_until_usec)) {
        const int last = scale.column(run.to_usec - 1);
        for (int col = scale.column(run.from_usec); col <= last; ++col) raise(col, Cell::Up);
    }
    for (const auto& e : events) {
        if (e.ts_usec < scale.from_usec || e.ts_usec >= scale.to_usec) continue;
        if (isCrashLike(e.event)) raise(scale.column(e.ts_usec), Cell::Crash);
        if (e.event == Event::Restart) raise(scale.column(e.ts_usec), Cell::Restart);
    }
    return cells;
}

std::vector<MarkGroup> groupMarks(std::span<const Usec> times, const Scale& scale,
                                  std::size_t per_column_max) {
    std::vector<MarkGroup> out;
    std::size_t i = 0;
    while (i < times.size()) {
        const int col = scale.column(times[i]);
        std::size_t end = i + 1;
        while (end < times.size() && scale.column(times[end]) == col) ++end;
        if (end - i > per_column_max) {
            out.push_back({col, i, end - i});
        } else {
            for (std::size_t k = i; k < end; ++k) out.push_back({col, k, 1});
        }
        i = end;
    }
    return out;
}

std::string renderTimeline(const std::vector<TimelineLane>& lanes, Usec from_usec, Usec to_usec,
                           Usec now_usec, const TimelineStyle& style) {
    // The last column stays empty: a line that fills the terminal exactly wraps in some.
    const int usable = std::max(style.width - 1, 20);
    std::size_t label = LABEL_MIN;
    for (const auto& lane : lanes) label = std::max(label, displayWidth(lane.unit));
    label = std::min<std::size_t>(label, static_cast<std::size_t>(usable / 3));
    const int columns = std::max(usable - static_cast<int>(label) - 1, 10);
    const Scale scale{from_usec, std::max(to_usec, from_usec + 1), columns};

    std::string out;
    auto paint = [&](std::string_view text, std::string_view color) {
        if (style.color && !color.empty()) {
            out += fmt::format("\x1b[{}m{}\x1b[0m", color, text);
        } else {
            out += text;
        }
    };
    // The axis: the span's ends above the first and last column.
    const Usec span = scale.to_usec - scale.from_usec;
    const std::string left = axisTime(scale.from_usec, span, style.utc);
    std::string right = axisTime(scale.to_usec, span, style.utc);
    // The same day: the right end needs only its time of day.
    if (right.compare(0, 11, left, 0, 11) == 0) right.erase(0, 11);
    out += padTo("", label + 1);
    if (left.size() + 1 + right.size() <= static_cast<std::size_t>(columns)) {
        out += left +
               std::string(static_cast<std::size_t>(columns) - left.size() - right.size(), ' ') +
               right;
    } else {
        out += fitTo(left, static_cast<std::size_t>(columns));
    }
    out += '\n';
    for (const auto& lane : lanes) {
        out += padTo(fitTo(lane.unit, label), label);
        out += ' ';
        const auto cells = bucketCells(lane.events, scale, now_usec);
        // Runs of one glyph share one colour sequence.
        std::size_t i = 0;
        while (i < cells.size()) {
            std::size_t end = i + 1;
            while (end < cells.size() && cells[end] == cells[i]) ++end;
            std::string run;
            for (std::size_t k = i; k < end; ++k) run += glyphOf(cells[i]).text;
            paint(run, glyphOf(cells[i]).color);
            i = end;
        }
        out += '\n';
    }
    // The legend, cut to the width like every other line.
    std::vector<std::pair<Cell, std::string_view>> keys{{Cell::Crash, "crash"},
                                                        {Cell::Restart, "restart"},
                                                        {Cell::Up, "up"},
                                                        {Cell::Empty, "down"}};
    const std::string tail =
        fmt::format("  1 column = {}", roughDuration((scale.to_usec - scale.from_usec) / columns));
    std::size_t used = 0;
    for (const auto& [cell, word] : keys) {
        const std::string plain = fmt::format("{} {}  ", glyphOf(cell).text, word);
        used += displayWidth(plain);
        paint(glyphOf(cell).text, glyphOf(cell).color);
        out += fmt::format(" {}  ", word);
    }
    if (used + displayWidth(tail) <= static_cast<std::size_t>(usable)) out += tail;
    out += '\n';
    return out;
}

int terminalWidth() {
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    if (const char* columns = std::getenv("COLUMNS")) {
        char* end = nullptr;
        const long value = std::strtol(columns, &end, 10);
        if (end != columns && *end == '\0' && value > 0 && value < 10000)
            return static_cast<int>(value);
    }
    return 80;
}

}  // namespace cerberus::cli
