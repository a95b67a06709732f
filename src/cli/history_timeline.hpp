#pragma once

// `cerberus history --timeline`: the rows history selected, drawn one line per unit.

#include <optional>
#include <vector>

#include "core/time.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

// The rows (oldest first) over [since, until) — from the first row and to now when not
// given — at the terminal's width, in colour on a TTY. Returns the exit code.
int printHistoryTimeline(const std::vector<store::StoredTransition>& rows,
                         std::optional<core::Usec> since_usec, std::optional<core::Usec> until_usec,
                         core::Usec now_usec, bool utc);

// Rows a timeline reads at most (the newest).
inline constexpr int TIMELINE_ROWS_MAX = 1000000;

}  // namespace cerberus::cli
