#pragma once

// Time laid out across columns: what `history --timeline` prints per unit and what
// `cerberus report` draws per lane. Pure: rows in, cells and groups out.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::cli {

// The span [from_usec, to_usec) cut into `columns` equal columns.
struct Scale {
    core::Usec from_usec = 0;
    core::Usec to_usec = 1;
    int columns = 1;

    // The column a time falls in; times outside the span are clamped to the first or last.
    int column(core::Usec ts_usec) const;
    // Where a time falls, in columns from the start (not clamped, fractional).
    double position(core::Usec ts_usec) const;
    core::Usec columnStart(int column) const;
};

// One stored transition of one unit, as a lane needs it.
struct LaneEvent {
    core::Usec ts_usec = 0;
    core::Event event = core::Event::Start;
};

// A stretch of time a unit was up (a run), [from_usec, to_usec).
struct Interval {
    core::Usec from_usec = 0;
    core::Usec to_usec = 0;
};

// The runs of one unit within the scale's span, from its events in time order: up from a
// start to the next crash, stop, fail or give-up. A unit whose first event in the span ends
// a run was up from the span's start; one still up at the end is up to `up_until_usec`
// (now, or the span's end when that is earlier).
std::vector<Interval> upIntervals(std::span<const LaneEvent> events, const Scale& scale,
                                  core::Usec up_until_usec);

// What a terminal column shows, the most telling thing that happened in it winning.
enum class Cell : std::uint8_t { Empty, Up, Restart, Crash };

// One cell per column: Crash when a crash, fail or give-up falls in it, else Restart when an
// automatic restart does, else Up when the unit was up at any time in it.
std::vector<Cell> bucketCells(std::span<const LaneEvent> events, const Scale& scale,
                              core::Usec up_until_usec);

// Marks of one kind in one lane, in time order, grouped by column: a column holding more
// than `per_column_max` of them becomes one group (drawn as one aggregated mark).
struct MarkGroup {
    int column = 0;
    std::size_t first = 0;  // index of the group's first mark
    std::size_t count = 0;  // marks in the group; 1 for a mark drawn on its own
};
std::vector<MarkGroup> groupMarks(std::span<const core::Usec> times, const Scale& scale,
                                  std::size_t per_column_max = 1);

// `history --timeline`: one line per unit, a legend line under them.
struct TimelineLane {
    std::string unit;
    std::vector<LaneEvent> events;  // in time order
};
struct TimelineStyle {
    int width = 80;      // terminal columns for the whole line
    bool color = false;  // ANSI colours (a TTY)
    bool utc = false;    // the axis in UTC rather than in the local time zone
};
std::string renderTimeline(const std::vector<TimelineLane>& lanes, core::Usec from_usec,
                           core::Usec to_usec, core::Usec now_usec, const TimelineStyle& style);

// The width of the terminal on stdout (TIOCGWINSZ), else $COLUMNS, else 80.
int terminalWidth();

}  // namespace cerberus::cli
