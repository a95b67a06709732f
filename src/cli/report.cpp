#include "cli/report.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <iterator>
#include <map>
#include <numeric>
#include <set>

#include "cli/timeline.hpp"
#include "core/text.hpp"

namespace cerberus::cli {

namespace {

using core::Event;
using core::Usec;
using Out = fmt::memory_buffer;

// The drawing, in SVG user units (pixels when shown at 100%).
constexpr int LABEL_WIDTH = 250;
constexpr int RIGHT_PAD = 20;
constexpr int AXIS_HEIGHT = 28;
constexpr int LANE_HEIGHT = 30;
constexpr int ALERT_ROW_HEIGHT = 12;
constexpr int LANE_GAP = 8;
constexpr int TICK_LABEL_ROOM = 24;
// Tables list at most this many rows; the rest are counted.
constexpr std::size_t TABLE_ROWS_MAX = 1000;

void put(Out& out, std::string_view text) { out.append(text.data(), text.data() + text.size()); }

template <typename... Args>
void putf(Out& out, fmt::format_string<Args...> format, Args&&... args) {
    fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

// Closes a table of `rows` rows, of which it lists TABLE_ROWS_MAX at most.
void endTable(Out& out, std::size_t rows) {
    put(out, "</table>\n");
    if (rows > TABLE_ROWS_MAX)
        putf(out, "<p class=\"note\">{} more not listed.</p>\n", rows - TABLE_ROWS_MAX);
}

std::string when(Usec ts_usec) { return core::formatIsoTime(ts_usec); }

// Rounded the way a table reads: milliseconds under 10 s, else whole seconds.
std::string readable(Usec usec) {
    if (usec < 10 * core::USEC_PER_SEC)
        return core::formatDuration((usec + 500) / core::USEC_PER_MSEC * core::USEC_PER_MSEC);
    return core::formatDuration((usec + core::USEC_PER_SEC / 2) / core::USEC_PER_SEC *
                                core::USEC_PER_SEC);
}

std::string_view exitCodeWord(std::uint8_t code) {
    return core::exitCodeName(static_cast<int>(code));
}

std::string invocationOf(const ReportRow& row) {
    if (row.invocation[0] == 0) return "none";
    return std::string(row.invocation.data(), row.invocation.size());
}

// What a mark's title says about the run that ended.
std::string exitText(const ReportData& data, const ReportRow& row) {
    std::string text = data.results[row.result];
    if (row.exit_code != 0) {
        if (!text.empty()) text += ", ";
        text += exitCodeWord(row.exit_code);
        if (row.has_exit_status) text += fmt::format(" {}", row.exit_status);
    } else if (row.has_exit_status) {
        text += fmt::format("{}status {}", text.empty() ? "" : ", ", row.exit_status);
    }
    return text.empty() ? "no exit status" : text;
}

// The kinds of marks a lane draws; one group list each.
enum class MarkKind : std::uint8_t {
    CrashExitCode,
    CrashSignal,
    CrashCoreDump,
    CrashOom,
    CrashOther,
    Restart,
    OperatorStart,
    AutoStart,
    CleanExit,
    OperatorStop,
    Fail,
    GiveUp,
    Count
};

constexpr auto KINDS = static_cast<std::size_t>(MarkKind::Count);

struct KindInfo {
    MarkKind kind;
    std::string_view event;  // data-kind: the stored event
    std::string_view sub;    // data-sub
    std::string_view noun;   // "crash", for counts in titles
    std::string_view plural;
    std::string_view legend = {};  // its label in the legend; empty: noun
};

// Every crash is a "crash"; only its class (data-sub) tells them apart.
constexpr KindInfo crash(MarkKind kind, std::string_view sub, std::string_view legend) {
    return {kind, "crash", sub, "crash", "crashes", legend};
}

// One row per MarkKind, in its order.
constexpr KindInfo KIND_INFO[] = {
    crash(MarkKind::CrashExitCode, "exit-code", "crash: exit code"),
    crash(MarkKind::CrashSignal, "signal", "crash: signal"),
    crash(MarkKind::CrashCoreDump, "core-dump", "crash: core dump"),
    crash(MarkKind::CrashOom, "oom-kill", "crash: OOM kill"),
    crash(MarkKind::CrashOther, "other", "crash: other (watchdog, timeout, …)"),
    {MarkKind::Restart, "restart", "automatic", "automatic restart", ""},
    {MarkKind::OperatorStart, "start", "operator", "operator start", ""},
    {MarkKind::AutoStart, "start", "automatic", "start after a restart", ""},
    {MarkKind::CleanExit, "stop", "clean-exit", "clean exit", ""},
    {MarkKind::OperatorStop, "stop", "operator", "operator stop", ""},
    {MarkKind::Fail, "fail", "failed", "entered failed", "times entered failed"},
    {MarkKind::GiveUp, "give_up", "start-limit", "give-up", "", "give-up (start limit)"},
};

constexpr bool rowPerKind() {
    if (std::size(KIND_INFO) != KINDS) return false;
    for (std::size_t k = 0; k < KINDS; ++k)
        if (KIND_INFO[k].kind != static_cast<MarkKind>(k)) return false;
    return true;
}
static_assert(rowPerKind(), "KIND_INFO has one row per MarkKind, in its order");

const KindInfo& info(MarkKind kind) { return KIND_INFO[static_cast<std::size_t>(kind)]; }

// The shape of one mark at x, in the lane whose top is y.
void drawShape(Out& out, MarkKind kind, double x, int y) {
    const double cy = y + LANE_HEIGHT / 2.0;
    switch (kind) {
    case MarkKind::CrashExitCode:
    case MarkKind::CrashSignal:
    case MarkKind::CrashCoreDump:
    case MarkKind::CrashOom:
    case MarkKind::CrashOther:
        putf(out, "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4.5\"", x, cy);
        break;
    case MarkKind::Restart:
        putf(out, "<path d=\"M{:.1f} {}l3.5 6l3.5 -6z\"", x - 3.5, y + 2);
        break;
    case MarkKind::OperatorStart:
        putf(out, "<path d=\"M{:.1f} {:.1f}l8 6l-8 6z\"", x, cy - 6);
        break;
    case MarkKind::AutoStart:
        putf(out, "<rect x=\"{:.1f}\" y=\"{}\" width=\"1.5\" height=\"6\"", x - 0.75, y + 22);
        break;
    case MarkKind::CleanExit:
        putf(out, "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\"", x, cy);
        break;
    case MarkKind::OperatorStop:
        putf(out, "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"8\" height=\"8\"", x - 4, cy - 4);
        break;
    case MarkKind::Fail:
        putf(out, "<rect x=\"{:.1f}\" y=\"{}\" width=\"1.5\" height=\"6\"", x - 0.75, y + 22);
        break;
    case MarkKind::GiveUp:
        putf(out, "<path d=\"M{0:.1f} {1:.1f}l10 10m0 -10l-10 10\"", x - 5, cy - 5);
        break;
    case MarkKind::Count: break;
    }
}

// Where an aggregated column of marks of `kind` sits in the lane: top and height.
std::pair<int, int> aggregateBand(MarkKind kind) {
    switch (kind) {
    case MarkKind::Restart: return {1, 8};
    case MarkKind::OperatorStart:
    case MarkKind::AutoStart:
    case MarkKind::CleanExit:
    case MarkKind::OperatorStop:
    case MarkKind::Fail: return {21, 8};
    case MarkKind::GiveUp: return {4, 22};
    default: return {6, 18};
    }
}

MarkKind crashKind(CrashClass crash) {
    switch (crash) {
    case CrashClass::ExitCode: return MarkKind::CrashExitCode;
    case CrashClass::Signal: return MarkKind::CrashSignal;
    case CrashClass::CoreDump: return MarkKind::CrashCoreDump;
    case CrashClass::OomKill: return MarkKind::CrashOom;
    case CrashClass::Other: return MarkKind::CrashOther;
    }
    return MarkKind::CrashOther;
}

// A clean stop with no restart after it was an operator's, once the manager had time to
// restart it (the evaluator's confirmation time); one too close to the end of the record is
// counted as a clean exit.
constexpr Usec OPERATOR_STOP_CONFIRM_USEC = 5 * core::USEC_PER_SEC;

bool operatorStop(const ReportData& data, const std::vector<std::uint32_t>& unit_rows,
                  std::size_t k) {
    if (data.rows[unit_rows[k]].event != Event::Stop) return false;
    if (k + 1 < unit_rows.size()) return data.rows[unit_rows[k + 1]].event != Event::Restart;
    return data.rows.back().ts_usec - data.rows[unit_rows[k]].ts_usec >= OPERATOR_STOP_CONFIRM_USEC;
}

// Per unit: what the tables and the lane need.
struct UnitStats {
    std::uint32_t unit = 0;
    std::vector<std::uint32_t> rows;  // indices into data.rows, time order
    std::size_t crashes = 0;
    std::size_t restarts = 0;
    std::size_t give_ups = 0;
    std::size_t operator_stops = 0;
    std::size_t alerts = 0;
    CrashLoop loop;
};

// Ticks for the time axis: a step from this list giving at most 10 of them.
constexpr std::array<Usec, 22> TICK_STEPS{
    core::USEC_PER_SEC,      2 * core::USEC_PER_SEC,   5 * core::USEC_PER_SEC,
    10 * core::USEC_PER_SEC, 15 * core::USEC_PER_SEC,  30 * core::USEC_PER_SEC,
    core::USEC_PER_MIN,      2 * core::USEC_PER_MIN,   5 * core::USEC_PER_MIN,
    10 * core::USEC_PER_MIN, 15 * core::USEC_PER_MIN,  30 * core::USEC_PER_MIN,
    core::USEC_PER_HOUR,     2 * core::USEC_PER_HOUR,  3 * core::USEC_PER_HOUR,
    6 * core::USEC_PER_HOUR, 12 * core::USEC_PER_HOUR, core::USEC_PER_DAY,
    2 * core::USEC_PER_DAY,  7 * core::USEC_PER_DAY,   14 * core::USEC_PER_DAY,
    28 * core::USEC_PER_DAY};

std::string tickLabel(Usec ts_usec, Usec step, Usec span) {
    const std::time_t seconds = static_cast<std::time_t>(ts_usec / core::USEC_PER_SEC);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char text[32];
    const char* format = span > core::USEC_PER_DAY    ? "%m-%d %H:%M"
                         : step >= core::USEC_PER_MIN ? "%H:%M"
                                                      : "%H:%M:%S";
    std::strftime(text, sizeof text, format, &tm);
    return text;
}

constexpr const char* STYLE = R"(
:root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --lane: #f6f8fa; }
body { font: 14px/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: var(--ink);
       margin: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
p.meta { color: var(--muted); margin: 0 0 4px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--line);
         vertical-align: top; }
td.n, td.t { white-space: nowrap; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
td.n, th.n { text-align: right; }
a { color: #0550ae; text-decoration: none; }
svg.timeline { width: 100%; height: auto; display: block; }
svg text { font: 12px "DejaVu Sans", Arial, sans-serif; fill: var(--ink); }
svg text.unit { font-weight: bold; }
svg text.sub { fill: var(--muted); font-size: 11px; }
svg text.tick { fill: var(--muted); font-size: 11px; }
.grid { stroke: #e4e8ec; stroke-width: 1; }
.lane-bg { fill: var(--lane); }
.run { fill: #8fd19e; }
.k-crash.c-exit-code { fill: #d1242f; }
.k-crash.c-signal { fill: #8250df; }
.k-crash.c-core-dump { fill: #6e1a1a; }
.k-crash.c-oom-kill { fill: #e16f24; }
.k-crash.c-other { fill: #bf3989; }
.k-restart { fill: #0969da; }
.k-start { fill: #1a7f37; }
.k-stop { fill: #fff; stroke: #57606a; stroke-width: 1.5; }
.k-stop.s-operator { fill: #57606a; stroke: none; }
.k-fail { fill: #82071e; }
.k-give_up { stroke: #000; stroke-width: 2.5; fill: none; }
rect.agg { stroke: none; }
rect.agg.k-stop { fill: #57606a; }
rect.agg.k-give_up { fill: #000; }
.alert { stroke: none; }
.alert.sev-critical { fill: #cf222e; }
.alert.sev-error { fill: #e16f24; }
.alert.sev-warning { fill: #d4a72c; }
.alert.sev-info { fill: #54aeff; }
.alert.silenced { fill-opacity: .4; stroke: #57606a; stroke-width: 1; stroke-dasharray: 2 2; }
.firing-arrow { fill: #57606a; }
.alert.replay { fill: #f5f0ff; stroke: #8250df; stroke-width: 1.5; stroke-dasharray: 4 2; }
.silence { fill: url(#hatch); opacity: .4; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 8px 0 12px; color: var(--muted);
          font-size: 13px; }
.legend svg { vertical-align: middle; }
.note { color: var(--muted); font-size: 12px; }
@media print {
  body { margin: 0; font-size: 11px; }
  h2 { break-after: avoid; }
  tr, svg.timeline g.lane { break-inside: avoid; }
  a { color: inherit; }
  .screen { display: none; }
  code { font-size: 10px; }
}
@page { size: A4 landscape; margin: 12mm; }
)";

// The marks in the legend: crashes first, then how a unit comes and goes.
constexpr MarkKind LEGEND[] = {
    MarkKind::CrashExitCode, MarkKind::CrashSignal,   MarkKind::CrashCoreDump,
    MarkKind::CrashOom,      MarkKind::CrashOther,    MarkKind::Restart,
    MarkKind::CleanExit,     MarkKind::OperatorStart, MarkKind::OperatorStop,
    MarkKind::AutoStart,     MarkKind::Fail,          MarkKind::GiveUp,
};

// A small sample of a mark for the legend.
void legendItem(Out& out, MarkKind kind) {
    const KindInfo& k = info(kind);
    putf(out,
         "<span><svg width=\"22\" height=\"30\" viewBox=\"-11 0 22 30\" aria-hidden=\"true\">");
    // Marks drawn above or below a lane's centre line are moved to the middle here.
    const int shift = kind == MarkKind::Restart                               ? 8
                      : kind == MarkKind::AutoStart || kind == MarkKind::Fail ? -10
                                                                              : 0;
    drawShape(out, kind, 0, shift);
    putf(out, " class=\"k-{} c-{} s-{}\"/></svg> {}</span>", k.event, k.sub, k.sub,
         k.legend.empty() ? k.noun : k.legend);
}

void renderLegend(Out& out) {
    put(out, "<div class=\"legend\">");
    put(out,
        "<span><svg width=\"22\" height=\"30\" aria-hidden=\"true\"><rect class=\"run\" x=\"0\" "
        "y=\"11\" width=\"22\" height=\"8\"/></svg> up (a run)</span>");
    for (const MarkKind kind : LEGEND) legendItem(out, kind);
    put(out,
        "<span><svg width=\"30\" height=\"12\" aria-hidden=\"true\"><rect class=\"alert "
        "sev-critical\" x=\"0\" y=\"2\" width=\"30\" height=\"8\"/></svg> alert, fire to "
        "resolve</span>"
        "<span><svg width=\"30\" height=\"12\" aria-hidden=\"true\"><rect class=\"alert replay\" "
        "x=\"1\" y=\"2\" width=\"28\" height=\"8\"/></svg> alert the --rules would raise</span>"
        "<span><svg width=\"30\" height=\"12\" aria-hidden=\"true\"><rect class=\"silence\" "
        "x=\"0\" "
        "y=\"0\" width=\"30\" height=\"12\"/></svg> silenced</span>");
    put(out, "</div>\n");
}

class Renderer {
public:
    Renderer(const ReportData& data, const ReportMeta& meta)
        : data_(data),
          meta_(meta),
          scale_{meta.from_usec, std::max(meta.to_usec, meta.from_usec + 1), meta.plot_width} {}

    std::string render();

private:
    void gatherStats();
    double x(Usec ts_usec) const {
        return LABEL_WIDTH +
               std::clamp(scale_.position(ts_usec), 0.0, static_cast<double>(meta_.plot_width));
    }
    void renderHeader(Out& out);
    void renderTimeline(Out& out);
    int renderLane(Out& out, const UnitStats& stats, int y, std::size_t lane);
    void renderMarks(Out& out, const UnitStats& stats, int y);
    void renderUnitsTable(Out& out);
    void renderAlertsTable(Out& out);
    void renderReplay(Out& out);
    void renderSilences(Out& out);
    std::optional<Usec> timeToFire(const AlertSpan& alert) const;
    std::vector<std::string> alertRules(const std::string& unit) const;

    const ReportData& data_;
    const ReportMeta& meta_;
    Scale scale_;
    std::vector<UnitStats> stats_;                  // ranked: most crashes first
    std::vector<std::vector<Usec>> trouble_;        // by unit: crash, restart, fail, give-up times
    std::vector<std::vector<Usec>> trouble_start_;  // by unit: where each one's chain began
    std::multimap<std::string, const AlertSpan*> alerts_by_unit_;
    std::multimap<std::string, const AlertSpan*> replay_by_unit_;
};

void Renderer::gatherStats() {
    std::vector<UnitStats> by_unit(data_.units.size());
    trouble_.resize(data_.units.size());
    for (std::uint32_t u = 0; u < by_unit.size(); ++u) by_unit[u].unit = u;
    for (std::uint32_t i = 0; i < data_.rows.size(); ++i) {
        const ReportRow& row = data_.rows[i];
        UnitStats& s = by_unit[row.unit];
        s.rows.push_back(i);
        if (row.event == Event::Crash) ++s.crashes;
        if (row.event == Event::Restart) ++s.restarts;
        if (row.event == Event::GiveUp) ++s.give_ups;
        if (row.event == Event::Crash || row.event == Event::Restart || row.event == Event::Fail ||
            row.event == Event::GiveUp)
            trouble_[row.unit].push_back(row.ts_usec);
    }
    trouble_start_.resize(trouble_.size());
    for (std::size_t u = 0; u < trouble_.size(); ++u) {
        const auto& times = trouble_[u];
        auto& start = trouble_start_[u];
        start.resize(times.size());
        for (std::size_t i = 0; i < times.size(); ++i)
            start[i] =
                i > 0 && times[i] - times[i - 1] <= CRASH_LOOP_GAP_USEC ? start[i - 1] : times[i];
    }
    for (auto& s : by_unit) {
        s.loop = longestCrashLoop(data_, s.rows);
        for (std::size_t k = 0; k < s.rows.size(); ++k)
            if (operatorStop(data_, s.rows, k)) ++s.operator_stops;
    }
    for (const auto& a : data_.alerts) alerts_by_unit_.emplace(a.unit, &a);
    for (const auto& a : data_.replay_alerts) replay_by_unit_.emplace(a.unit, &a);
    for (auto& s : by_unit) s.alerts = alerts_by_unit_.count(data_.units[s.unit]);
    std::sort(by_unit.begin(), by_unit.end(), [this](const UnitStats& a, const UnitStats& b) {
        if (a.crashes != b.crashes) return a.crashes > b.crashes;
        if (a.restarts != b.restarts) return a.restarts > b.restarts;
        return data_.units[a.unit] < data_.units[b.unit];
    });
    stats_ = std::move(by_unit);
}

std::optional<Usec> Renderer::timeToFire(const AlertSpan& alert) const {
    auto it = std::find(data_.units.begin(), data_.units.end(), alert.unit);
    if (it == data_.units.end()) return std::nullopt;
    const auto u = static_cast<std::size_t>(it - data_.units.begin());
    const auto& times = trouble_[u];
    auto at = std::upper_bound(times.begin(), times.end(), alert.fired_usec);
    if (at == times.begin()) return std::nullopt;
    const auto i = static_cast<std::size_t>(at - times.begin()) - 1;
    if (alert.fired_usec - times[i] > CRASH_LOOP_GAP_USEC) return std::nullopt;
    return alert.fired_usec - trouble_start_[u][i];
}

std::vector<std::string> Renderer::alertRules(const std::string& unit) const {
    std::set<std::string> rules;
    auto [a, b] = alerts_by_unit_.equal_range(unit);
    for (auto it = a; it != b; ++it) rules.insert(it->second->rule);
    auto [c, d] = replay_by_unit_.equal_range(unit);
    for (auto it = c; it != d; ++it) rules.insert(it->second->rule);
    return {rules.begin(), rules.end()};
}

void Renderer::renderHeader(Out& out) {
    const std::string host = meta_.host.empty() ? "" : " on " + escapeHtml(meta_.host);
    putf(out,
         "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<title>cerberus report{}: {} to {}</title>\n<style>{}</style>\n</head>\n<body>\n",
         host, when(meta_.from_usec), when(meta_.to_usec), STYLE);
    putf(out, "<header>\n<h1>cerberus report{}</h1>\n", host);
    std::size_t alerts_in_span = data_.alerts.size();
    putf(out,
         "<p class=\"meta\">From <time>{}</time> to <time>{}</time> (UTC, {}): {} of {}, {}.</p>\n",
         when(meta_.from_usec), when(meta_.to_usec), readable(meta_.to_usec - meta_.from_usec),
         core::plural(data_.rows.size(), "transition"), core::plural(data_.units.size(), "unit"),
         core::plural(alerts_in_span, "alert"));
    putf(out, "<p class=\"meta\">Database <code>{}</code>{}; written {}.</p>\n",
         escapeHtml(meta_.db_path),
         meta_.filter.empty() ? ""
                              : ", units matching <code>" + escapeHtml(meta_.filter) + "</code>",
         when(meta_.generated_usec));
    if (!meta_.replay_rules.empty())
        putf(out,
             "<p class=\"meta\">Dashed bands: the alerts the rules in <code>{}</code> would have "
             "raised over this history (replay), beside the alerts recorded.</p>\n",
             escapeHtml(meta_.replay_rules));
    put(out, "</header>\n");
}

void Renderer::renderMarks(Out& out, const UnitStats& stats, int y) {
    // Every row of the unit goes into exactly one kind, so marks (with data-count) add up
    // to the rows stored.
    std::array<std::vector<Usec>, KINDS> times;
    std::array<std::vector<std::uint32_t>, KINDS> rows;
    for (std::size_t k = 0; k < stats.rows.size(); ++k) {
        const ReportRow& row = data_.rows[stats.rows[k]];
        const bool restart_before = k > 0 && data_.rows[stats.rows[k - 1]].event == Event::Restart;
        MarkKind kind = MarkKind::Fail;
        switch (row.event) {
        case Event::Crash:
            kind = crashKind(classifyCrash(data_.results[row.result], exitCodeWord(row.exit_code)));
            break;
        case Event::Restart: kind = MarkKind::Restart; break;
        case Event::Start:
            kind = restart_before ? MarkKind::AutoStart : MarkKind::OperatorStart;
            break;
        case Event::Stop:
            kind =
                operatorStop(data_, stats.rows, k) ? MarkKind::OperatorStop : MarkKind::CleanExit;
            break;
        case Event::Fail: kind = MarkKind::Fail; break;
        case Event::GiveUp: kind = MarkKind::GiveUp; break;
        }
        times[static_cast<std::size_t>(kind)].push_back(row.ts_usec);
        rows[static_cast<std::size_t>(kind)].push_back(stats.rows[k]);
    }
    const std::string unit = escapeHtml(data_.units[stats.unit]);
    // Drawn back to front: starts and stops under crashes, give-ups on top.
    constexpr std::array<MarkKind, KINDS> ORDER{
        MarkKind::AutoStart,    MarkKind::Fail,          MarkKind::CleanExit,
        MarkKind::OperatorStop, MarkKind::OperatorStart, MarkKind::Restart,
        MarkKind::CrashOther,   MarkKind::CrashExitCode, MarkKind::CrashSignal,
        MarkKind::CrashOom,     MarkKind::CrashCoreDump, MarkKind::GiveUp};
    for (const MarkKind kind : ORDER) {
        const auto k = static_cast<std::size_t>(kind);
        if (times[k].empty()) continue;
        const KindInfo& ki = info(kind);
        for (const MarkGroup& g : groupMarks(times[k], scale_)) {
            const ReportRow& first = data_.rows[rows[k][g.first]];
            if (g.count == 1) {
                drawShape(out, kind, x(first.ts_usec), y);
                putf(out,
                     " class=\"m k-{0} c-{1} s-{1}\" data-unit=\"{2}\" data-kind=\"{0}\" "
                     "data-sub=\"{1}\" data-usec=\"{3}\"><title>{4} {5}: ",
                     ki.event, ki.sub, unit, first.ts_usec, when(first.ts_usec), ki.noun);
                if (first.event == Event::Crash || first.event == Event::Stop ||
                    first.event == Event::Fail || first.event == Event::GiveUp)
                    putf(out, "{}; ", escapeHtml(exitText(data_, first)));
                if (first.event == Event::Restart && first.n_restarts >= 0)
                    putf(out, "NRestarts {}; ", first.n_restarts);
                putf(out, "InvocationID {}</title></", invocationOf(first));
                put(out, kind == MarkKind::CrashExitCode || kind == MarkKind::CrashSignal ||
                                 kind == MarkKind::CrashCoreDump || kind == MarkKind::CrashOom ||
                                 kind == MarkKind::CrashOther || kind == MarkKind::CleanExit
                             ? "circle>"
                         : kind == MarkKind::AutoStart || kind == MarkKind::OperatorStop ||
                                 kind == MarkKind::Fail
                             ? "rect>"
                             : "path>");
            } else {
                const ReportRow& last = data_.rows[rows[k][g.first + g.count - 1]];
                const auto [top, height] = aggregateBand(kind);
                // Darker with more marks: 2 marks faint, 100 or more full.
                const double opacity =
                    std::min(1.0, 0.35 + 0.325 * std::log10(static_cast<double>(g.count)));
                putf(out,
                     "<rect class=\"agg k-{0} c-{1} s-{1}\" x=\"{2}\" y=\"{3}\" width=\"1\" "
                     "height=\"{4}\" fill-opacity=\"{5:.2f}\" data-unit=\"{6}\" data-kind=\"{0}\" "
                     "data-sub=\"{1}\" data-count=\"{7}\"><title>{7} {8} ({9}) from {10} to {11}; "
                     "last: {12}, InvocationID {13}</title></rect>",
                     ki.event, ki.sub, LABEL_WIDTH + g.column, y + top, height, opacity, unit,
                     g.count, ki.plural.empty() ? std::string(ki.noun) + "s" : ki.plural, ki.sub,
                     when(first.ts_usec), when(last.ts_usec), escapeHtml(exitText(data_, last)),
                     invocationOf(last));
            }
        }
    }
}

int Renderer::renderLane(Out& out, const UnitStats& stats, int y, std::size_t lane) {
    const std::string& name = data_.units[stats.unit];
    const std::string unit = escapeHtml(name);
    const auto rules = alertRules(name);
    const bool replay = !meta_.replay_rules.empty();
    const int alert_rows = static_cast<int>(rules.size()) * (replay ? 2 : 1);
    const int height = LANE_HEIGHT + alert_rows * ALERT_ROW_HEIGHT;
    putf(out, "<g class=\"lane\" id=\"lane-{}\" data-unit=\"{}\">\n", lane, unit);
    putf(out, "<rect class=\"lane-bg\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\n",
         LABEL_WIDTH, y, meta_.plot_width, height);
    // The label: the unit, cut to fit, with its full name as a title.
    std::string shown = name;
    if (shown.size() > 30) shown = shown.substr(0, 29) + "…";
    putf(out,
         "<text class=\"unit\" x=\"8\" y=\"{}\"><title>{}</title>{}</text>\n"
         "<text class=\"sub\" x=\"8\" y=\"{}\">{}, {}</text>\n",
         y + 13, unit, escapeHtml(shown), y + 26, core::plural(stats.crashes, "crash", "crashes"),
         core::plural(stats.restarts, "restart"));

    // Silences over the whole lane, behind everything.
    for (const auto& s : data_.silences) {
        if (::fnmatch(s.unit_glob.c_str(), name.c_str(), 0) != 0) continue;
        if (s.ends_usec <= meta_.from_usec || s.starts_usec >= meta_.to_usec) continue;
        const double x0 = x(s.starts_usec);
        putf(out,
             "<rect class=\"silence\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" "
             "data-unit=\"{}\" data-kind=\"silence\" data-starts-usec=\"{}\" "
             "data-ends-usec=\"{}\"><title>silenced {} to {}: '{}'{}{}</title></rect>\n",
             x0, y, std::max(1.0, x(s.ends_usec) - x0), height, unit, s.starts_usec, s.ends_usec,
             when(s.starts_usec), when(s.ends_usec), escapeHtml(s.unit_glob),
             s.rule.empty() ? ", every rule" : ", rule '" + escapeHtml(s.rule) + "'",
             s.comment.empty() ? "" : " (" + escapeHtml(s.comment) + ")");
    }

    // Runs: merged where they meet within a pixel, so a busy lane stays one bar per column.
    std::vector<LaneEvent> events;
    events.reserve(stats.rows.size());
    for (const auto i : stats.rows) events.push_back({data_.rows[i].ts_usec, data_.rows[i].event});
    const auto runs = upIntervals(events, scale_, meta_.to_usec);
    std::size_t r = 0;
    while (r < runs.size()) {
        double x0 = x(runs[r].from_usec);
        double x1 = x(runs[r].to_usec);
        Usec up = runs[r].to_usec - runs[r].from_usec;
        std::size_t end = r + 1;
        while (end < runs.size() && x(runs[end].from_usec) <= x1 + 1.0) {
            x1 = x(runs[end].to_usec);
            up += runs[end].to_usec - runs[end].from_usec;
            ++end;
        }
        const std::string title =
            end - r == 1
                ? fmt::format("up from {} to {} ({})", when(runs[r].from_usec),
                              when(runs[r].to_usec), readable(up))
                : fmt::format("{} runs from {} to {}, up {} in all", end - r,
                              when(runs[r].from_usec), when(runs[end - 1].to_usec), readable(up));
        putf(out,
             "<rect class=\"run\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"8\" "
             "data-unit=\"{}\" data-kind=\"run\" data-count=\"{}\"><title>{}</title></rect>\n",
             x0, y + 11, std::max(1.0, x1 - x0), unit, end - r, title);
        r = end;
    }
    renderMarks(out, stats, y);
    put(out, "\n");

    // Alert bands, one row per rule (and one for its replay).
    int row_y = y + LANE_HEIGHT;
    auto band = [&](const AlertSpan& a, std::string_view source, int band_y) {
        const double x0 = x(a.fired_usec);
        const Usec end = a.resolved_usec.value_or(meta_.to_usec);
        const std::string resolved =
            a.resolved_usec ? fmt::format(" data-resolved-usec=\"{}\"", *a.resolved_usec) : "";
        const auto ttf = timeToFire(a);
        putf(out,
             "<rect class=\"alert {}sev-{}{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" "
             "height=\"8\" data-unit=\"{}\" data-kind=\"alert\" data-source=\"{}\" "
             "data-rule=\"{}\" data-fired-usec=\"{}\"{}><title>{} alert '{}' ({}): fired {}{}, "
             "{}{}</title></rect>\n",
             source == "replay" ? "replay " : "", escapeHtml(a.severity),
             a.silenced ? " silenced" : "", x0, band_y + 2, std::max(2.0, x(end) - x0), unit,
             source, escapeHtml(a.rule), a.fired_usec, resolved, source, escapeHtml(a.rule),
             escapeHtml(a.severity), when(a.fired_usec),
             ttf ? fmt::format(" ({} after the trouble began)", readable(*ttf)) : "",
             a.resolved_usec ? "resolved " + when(*a.resolved_usec) + " (after " +
                                   readable(*a.resolved_usec - a.fired_usec) + ")"
                             : "still firing",
             a.silenced ? "; silenced" : "");
        // Still firing at the end: an arrow says it goes on.
        if (!a.resolved_usec)
            putf(out, "<path class=\"firing-arrow\" d=\"M{:.1f} {}l6 5l-6 5z\"/>\n",
                 x(meta_.to_usec) + 1, band_y + 1);
    };
    // One row of `rule`'s bands from `spans`, headed "alert 'RULE'" or "replay 'RULE'".
    const auto band_row = [&](std::string_view label, const auto& spans, std::string_view source,
                              const std::string& rule) {
        putf(out, "<text class=\"sub\" x=\"20\" y=\"{}\">{} '{}'</text>\n", row_y + 10, label,
             escapeHtml(rule));
        auto [first, last] = spans.equal_range(name);
        for (auto it = first; it != last; ++it)
            if (it->second->rule == rule) band(*it->second, source, row_y);
        row_y += ALERT_ROW_HEIGHT;
    };
    for (const auto& rule : rules) {
        band_row("alert", alerts_by_unit_, "recorded", rule);
        if (replay) band_row("replay", replay_by_unit_, "replay", rule);
    }
    put(out, "</g>\n");
    return height;
}

void Renderer::renderTimeline(Out& out) {
    put(out, "<h2>Timeline</h2>\n");
    renderLegend(out);
    if (stats_.empty()) {
        put(out, "<p>No transitions or alerts in this span.</p>\n");
        return;
    }
    // Height first: each lane's alert rows.
    int height = AXIS_HEIGHT;
    for (const auto& s : stats_) {
        const int rules = static_cast<int>(alertRules(data_.units[s.unit]).size());
        height += LANE_HEIGHT + rules * ALERT_ROW_HEIGHT * (meta_.replay_rules.empty() ? 1 : 2) +
                  LANE_GAP;
    }
    const int width = LABEL_WIDTH + meta_.plot_width + RIGHT_PAD;
    putf(out,
         "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {1}\" "
         "width=\"{0}\" height=\"{1}\" role=\"img\" aria-label=\"timeline per unit\" "
         "data-from-usec=\"{2}\" data-to-usec=\"{3}\" data-plot-x=\"{4}\" "
         "data-plot-width=\"{5}\">\n",
         width, height, meta_.from_usec, meta_.to_usec, LABEL_WIDTH, meta_.plot_width);
    put(out,
        "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
        "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#eef1f4\"/>"
        "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#8c959f\" stroke-width=\"2\"/>"
        "</pattern></defs>\n");
    // The axis: ticks at round times, grid lines through every lane.
    const Usec span = scale_.to_usec - scale_.from_usec;
    Usec step = TICK_STEPS.back();
    for (const Usec candidate : TICK_STEPS)
        if (span / candidate <= 10) {
            step = candidate;
            break;
        }
    for (Usec t = (scale_.from_usec / step + 1) * step; t < scale_.to_usec; t += step) {
        const double tx = x(t);
        // A label too close to the right edge would be cut.
        if (tx > LABEL_WIDTH + meta_.plot_width - TICK_LABEL_ROOM) continue;
        putf(out,
             "<line class=\"grid\" x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\"/>"
             "<text class=\"tick\" x=\"{0:.1f}\" y=\"14\" text-anchor=\"middle\">{3}</text>\n",
             tx, AXIS_HEIGHT - 8, height, tickLabel(t, step, span));
    }
    putf(out, "<text class=\"tick\" x=\"8\" y=\"14\">UTC</text>\n");
    int y = AXIS_HEIGHT;
    for (std::size_t lane = 0; lane < stats_.size(); ++lane)
        y += renderLane(out, stats_[lane], y, lane) + LANE_GAP;
    put(out, "</svg>\n");
    putf(out,
         "<p class=\"note screen\">Hover a mark for its exact time, exit status and InvocationID. "
         "Where "
         "more than one mark of a kind falls in one pixel column, they are drawn as one bar "
         "(data-count), darker the more it holds.</p>\n");
}

void Renderer::renderUnitsTable(Out& out) {
    put(out, "<h2>Units, by crashes</h2>\n");
    if (stats_.empty()) {
        put(out, "<p>None.</p>\n");
        return;
    }
    // Restarts per day over a span of days; over a shorter one, per hour or per minute, so
    // that 10 restarts in 14 s do not read as 60,000 a day.
    const Usec span = std::max<Usec>(1, meta_.to_usec - meta_.from_usec);
    const auto [rate_unit, rate_usec] =
        span >= core::USEC_PER_DAY    ? std::pair{"day", core::USEC_PER_DAY}
        : span >= core::USEC_PER_HOUR ? std::pair{"hour", core::USEC_PER_HOUR}
                                      : std::pair{"minute", core::USEC_PER_MIN};
    const double periods = static_cast<double>(span) / static_cast<double>(rate_usec);
    putf(out,
         "<table class=\"units\">\n<tr><th>Unit</th><th class=\"n\">Crashes</th><th "
         "class=\"n\">Restarts</th><th class=\"n\">Restarts per {}</th><th>Longest crash "
         "loop</th><th class=\"n\">Give-ups</th><th class=\"n\">Operator stops</th><th "
         "class=\"n\">Alerts</th></tr>\n",
         rate_unit);
    for (std::size_t i = 0; i < stats_.size() && i < TABLE_ROWS_MAX; ++i) {
        const UnitStats& s = stats_[i];
        const std::string loop =
            s.loop.crashes == 0
                ? "-"
                : fmt::format("{} in {} from {}", core::plural(s.loop.crashes, "crash", "crashes"),
                              readable(s.loop.to_usec - s.loop.from_usec), when(s.loop.from_usec));
        putf(out,
             "<tr data-unit=\"{0}\"><td><a href=\"#lane-{1}\">{0}</a></td><td class=\"n\">{2}</td>"
             "<td class=\"n\">{3}</td><td class=\"n\">{4:.1f}</td><td>{5}</td><td "
             "class=\"n\">{6}</td><td class=\"n\">{7}</td><td class=\"n\">{8}</td></tr>\n",
             escapeHtml(data_.units[s.unit]), i, s.crashes, s.restarts,
             static_cast<double>(s.restarts) / periods, loop, s.give_ups, s.operator_stops,
             s.alerts);
    }
    endTable(out, stats_.size());
    putf(out,
         "<p class=\"note\">A crash loop: crashes each at most {} after the one before, with no "
         "clean stop or give-up between them. Restarts per {}: averaged over the report's span "
         "(per day over a day or more, per hour over an hour or more, else per minute). An "
         "operator stop: a clean stop the manager did not follow with a restart within {}.</p>\n",
         readable(CRASH_LOOP_GAP_USEC), rate_unit, readable(OPERATOR_STOP_CONFIRM_USEC));
}

void Renderer::renderAlertsTable(Out& out) {
    put(out, "<h2>Alerts</h2>\n");
    if (data_.alerts.empty()) {
        put(out, "<p>No alert fired in this span.</p>\n");
        return;
    }
    put(out,
        "<table class=\"alerts\">\n<tr><th>Rule</th><th>Unit</th><th>Severity</th><th>Fired</th>"
        "<th class=\"n\">Time to fire</th><th>Resolved</th><th class=\"n\">Time to "
        "resolve</th><th class=\"n\">Events</th><th>Silenced</th></tr>\n");
    std::vector<const AlertSpan*> sorted;
    for (const auto& a : data_.alerts) sorted.push_back(&a);
    std::sort(sorted.begin(), sorted.end(),
              [](const AlertSpan* a, const AlertSpan* b) { return a->fired_usec < b->fired_usec; });
    for (std::size_t i = 0; i < sorted.size() && i < TABLE_ROWS_MAX; ++i) {
        const AlertSpan& a = *sorted[i];
        const auto ttf = timeToFire(a);
        putf(out,
             "<tr data-rule=\"{0}\" data-unit=\"{1}\"><td>{0}</td><td>{1}</td><td>{2}</td>"
             "<td class=\"t\">{3}</td><td class=\"n\">{4}</td><td class=\"t\">{5}</td><td "
             "class=\"n\">{6}</td>"
             "<td class=\"n\">{7}</td><td>{8}</td></tr>\n",
             escapeHtml(a.rule), escapeHtml(a.unit), escapeHtml(a.severity), when(a.fired_usec),
             ttf ? readable(*ttf) : "-", a.resolved_usec ? when(*a.resolved_usec) : "still firing",
             a.resolved_usec ? readable(*a.resolved_usec - a.fired_usec) : "-", a.count,
             a.silenced ? "yes" : "no");
    }
    endTable(out, sorted.size());
    putf(out,
         "<p class=\"note\">Time to fire: from the unit's first crash, restart, fail or give-up "
         "in the run of them (each at most {} after the one before) that led to the fire. Time "
         "to resolve: from the fire to the resolve.</p>\n",
         readable(CRASH_LOOP_GAP_USEC));
}

void Renderer::renderReplay(Out& out) {
    if (meta_.replay_rules.empty()) return;
    putf(out, "<h2>Replay of <code>{}</code></h2>\n", escapeHtml(meta_.replay_rules));
    std::map<std::string, std::pair<std::size_t, std::size_t>> per_rule;  // recorded, replayed
    for (const auto& a : data_.alerts) ++per_rule[a.rule].first;
    for (const auto& a : data_.replay_alerts) ++per_rule[a.rule].second;
    put(out,
        "<table class=\"replay\">\n<tr><th>Rule</th><th class=\"n\">Alerts recorded</th>"
        "<th class=\"n\">Alerts the rules would raise</th></tr>\n");
    for (const auto& [rule, counts] : per_rule)
        putf(out, "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
             escapeHtml(rule), counts.first, counts.second);
    put(out, "</table>\n");
    putf(out,
         "<p class=\"note\">Replay starts with empty windows at the report's start and runs "
         "every timer due by its end, as <code>cerberus replay</code> does.</p>\n");
}

void Renderer::renderSilences(Out& out) {
    if (data_.silences.empty()) return;
    put(out,
        "<h2>Silences</h2>\n<table class=\"silences\">\n<tr><th>Units</th><th>Rule</th>"
        "<th>From</th><th>To</th><th>Comment</th></tr>\n");
    for (const auto& s : data_.silences)
        putf(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
             escapeHtml(s.unit_glob), s.rule.empty() ? "every rule" : escapeHtml(s.rule),
             when(s.starts_usec), when(s.ends_usec), escapeHtml(s.comment));
    put(out, "</table>\n");
}

std::string Renderer::render() {
    gatherStats();
    Out out;
    renderHeader(out);
    renderTimeline(out);
    renderUnitsTable(out);
    renderAlertsTable(out);
    renderReplay(out);
    renderSilences(out);
    put(out, "</body>\n</html>\n");
    return fmt::to_string(out);
}

}  // namespace

CrashClass classifyCrash(std::string_view result, std::string_view exit_code) {
    if (result == "oom-kill") return CrashClass::OomKill;
    if (result == "core-dump" || exit_code == "dumped") return CrashClass::CoreDump;
    if (result == "signal" || exit_code == "killed") return CrashClass::Signal;
    if (result == "exit-code" || (result.empty() && exit_code == "exited"))
        return CrashClass::ExitCode;
    return CrashClass::Other;
}

std::string_view toString(CrashClass crash) { return info(crashKind(crash)).sub; }

std::uint32_t ReportData::unitIndex(const std::string& name) {
    if (auto it = unit_index_.find(name); it != unit_index_.end()) return it->second;
    const auto u = static_cast<std::uint32_t>(units.size());
    units.push_back(name);
    unit_index_.emplace(name, u);
    return u;
}

void ReportData::add(const core::Transition& t) {
    ReportRow row;
    row.ts_usec = t.ts_usec;
    row.unit = unitIndex(t.unit);
    row.event = t.event;
    if (auto it = result_index_.find(t.result); it != result_index_.end()) {
        row.result = it->second;
    } else if (results.size() < UINT16_MAX) {
        row.result = static_cast<std::uint16_t>(results.size());
        results.push_back(t.result);
        result_index_.emplace(t.result, row.result);
    } else {
        row.result = 0;  // past 65535 distinct results (never seen): shown as the first
    }
    row.exit_code = static_cast<std::uint8_t>(core::parseExitCodeName(t.exit_code));
    row.has_exit_status = t.exit_status.has_value();
    row.exit_status = t.exit_status.value_or(0);
    row.n_restarts = t.n_restarts.value_or(-1);
    if (t.invocation_id.size() == row.invocation.size())
        std::copy(t.invocation_id.begin(), t.invocation_id.end(), row.invocation.begin());
    rows.push_back(row);
}

CrashLoop longestCrashLoop(const ReportData& data, const std::vector<std::uint32_t>& unit_rows) {
    CrashLoop best;
    CrashLoop current;
    for (const auto i : unit_rows) {
        const ReportRow& row = data.rows[i];
        if (row.event == Event::Stop || row.event == Event::GiveUp) {
            current = {};
            continue;
        }
        if (row.event != Event::Crash) continue;
        if (current.crashes > 0 && row.ts_usec - current.to_usec <= CRASH_LOOP_GAP_USEC) {
            ++current.crashes;
            current.to_usec = row.ts_usec;
        } else {
            current = {1, row.ts_usec, row.ts_usec};
        }
        if (current.crashes > best.crashes) best = current;
    }
    return best;
}

std::string renderReport(const ReportData& data, const ReportMeta& meta) {
    return Renderer(data, meta).render();
}

std::string escapeHtml(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        switch (c) {
        case '&':
            out += "&amp;";
            ++i;
            continue;
        case '<':
            out += "&lt;";
            ++i;
            continue;
        case '>':
            out += "&gt;";
            ++i;
            continue;
        case '"':
            out += "&quot;";
            ++i;
            continue;
        case '\'':
            out += "&#39;";
            ++i;
            continue;
        default: break;
        }
        if (c < 0x80) {
            out += static_cast<char>(c < 0x20 && c != '\t' && c != '\n' ? '?' : c);
            ++i;
            continue;
        }
        // A well-formed UTF-8 sequence is copied; anything else becomes U+FFFD.
        const std::size_t length = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        bool ok = length > 0 && i + length <= text.size() && !(c >= 0xF8);
        for (std::size_t k = 1; ok && k < length; ++k)
            ok = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
        if (ok) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

}  // namespace cerberus::cli
