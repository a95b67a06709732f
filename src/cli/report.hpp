#pragma once

// `cerberus report`: one self-contained HTML file (inline SVG and CSS, no script, nothing
// fetched) drawn from what the history holds. Pure: the data in, the page out.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::cli {

// How a crashed run ended, as the report colours it.
enum class CrashClass : std::uint8_t { ExitCode, Signal, CoreDump, OomKill, Other };
CrashClass classifyCrash(std::string_view result, std::string_view exit_code);

// One stored transition, kept small: a report may read millions.
struct ReportRow {
    core::Usec ts_usec = 0;
    std::uint32_t unit = 0;
    std::uint16_t result = 0;  // index into ReportData::results
    core::Event event = core::Event::Start;
    std::uint8_t exit_code = 0;  // ExecMainCode: 0 none, 1 exited, 2 killed, 3 dumped
    bool has_exit_status = false;
    std::int32_t exit_status = 0;
    std::int64_t n_restarts = -1;       // -1: not known
    std::array<char, 32> invocation{};  // InvocationID, all zero when none
};

// An alert from its fire to its resolve (nullopt: still firing at the end).
struct AlertSpan {
    std::string rule;
    std::string unit;
    std::string severity;
    core::Usec fired_usec = 0;
    std::optional<core::Usec> resolved_usec;
    std::int64_t count = 0;
    bool silenced = false;
};

struct SilenceSpan {
    std::string unit_glob;
    std::string rule;  // empty: every rule
    core::Usec starts_usec = 0;
    core::Usec ends_usec = 0;
    std::string comment;
};

// What the report shows, gathered by the caller.
class ReportData {
public:
    // Transitions in time order.
    void add(const core::Transition& t);
    std::uint32_t unitIndex(const std::string& name);

    std::vector<std::string> units;
    std::vector<std::string> results;  // Service.Result values, interned
    std::vector<ReportRow> rows;
    std::vector<AlertSpan> alerts;         // as recorded
    std::vector<AlertSpan> replay_alerts;  // what --rules would have raised
    std::vector<SilenceSpan> silences;

private:
    std::unordered_map<std::string, std::uint32_t> unit_index_;
    std::unordered_map<std::string, std::uint16_t> result_index_;
};

struct ReportMeta {
    core::Usec from_usec = 0;
    core::Usec to_usec = 1;
    core::Usec generated_usec = 0;
    std::string host;
    std::string db_path;
    std::string filter;        // the --unit patterns, for the heading; empty: all units
    std::string replay_rules;  // the --rules paths; empty: no replay
    int plot_width = 1000;     // SVG user units (pixels at 100%) for the time axis
};

// Crashes at most this far apart belong to one crash loop (the shipped rule's window).
inline constexpr core::Usec CRASH_LOOP_GAP_USEC = 5 * core::USEC_PER_MIN;

// The longest crash loop of one unit: consecutive crashes, each within CRASH_LOOP_GAP_USEC
// of the one before, with no clean stop or give-up between them.
struct CrashLoop {
    std::size_t crashes = 0;
    core::Usec from_usec = 0;
    core::Usec to_usec = 0;
};
CrashLoop longestCrashLoop(const ReportData& data, const std::vector<std::uint32_t>& unit_rows);

std::string renderReport(const ReportData& data, const ReportMeta& meta);

// Text for HTML element content and attribute values: markup characters escaped, bytes that
// are not UTF-8 replaced (unit names from other inits need not be).
std::string escapeHtml(std::string_view text);

}  // namespace cerberus::cli
