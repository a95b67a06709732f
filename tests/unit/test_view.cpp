#include <doctest/doctest.h>
#include <fmt/core.h>

#include <regex>
#include <string>
#include <vector>

#include "cli/report.hpp"
#include "cli/timeline.hpp"

using namespace cerberus;
using namespace cerberus::cli;
using core::Event;
using core::USEC_PER_SEC;

namespace {

constexpr core::Usec T0 = 1'764'600'000 * USEC_PER_SEC;

core::Usec at(double seconds) { return T0 + static_cast<core::Usec>(seconds * USEC_PER_SEC); }

core::Transition row(const std::string& unit, Event event, double seconds,
                     const std::string& result = "", const std::string& exit_code = "",
                     std::optional<int> status = std::nullopt) {
    core::Transition t;
    t.unit = unit;
    t.event = event;
    t.ts_usec = at(seconds);
    t.result = result;
    t.exit_code = exit_code;
    t.exit_status = status;
    t.invocation_id = "0123456789abcdef0123456789abcdef";
    return t;
}

// Marks of `kind` for `unit` in the page, an aggregated one counting data-count.
std::size_t marks(const std::string& html, const std::string& unit, const std::string& kind) {
    const std::regex element("<(circle|rect|path)[^>]*data-unit=\"" + unit + "\" data-kind=\"" +
                             kind + "\"[^>]*>");
    const std::regex count("data-count=\"(\\d+)\"");
    std::size_t total = 0;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), element);
         it != std::sregex_iterator(); ++it) {
        const std::string tag = it->str();
        std::smatch m;
        total += std::regex_search(tag, m, count) ? std::stoul(m[1]) : 1;
    }
    return total;
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

// Display columns of a UTF-8 line without ANSI sequences.
std::size_t columnsOf(const std::string& line) {
    const std::string plain = std::regex_replace(line, std::regex("\x1b\\[[0-9;]*m"), "");
    std::size_t n = 0;
    for (const char c : plain)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
    return n;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (auto end = text.find('\n'); end != std::string::npos; end = text.find('\n', start)) {
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

}  // namespace

TEST_CASE("a scale maps times to columns and clamps what lies outside") {
    const Scale scale{at(0), at(100), 10};
    CHECK(scale.column(at(0)) == 0);
    CHECK(scale.column(at(9.99)) == 0);
    CHECK(scale.column(at(10)) == 1);
    CHECK(scale.column(at(99.9)) == 9);
    CHECK(scale.column(at(-50)) == 0);
    CHECK(scale.column(at(500)) == 9);
    CHECK(scale.columnStart(5) == at(50));
}

TEST_CASE("a run lasts from a start to the crash or stop that ends it") {
    const Scale scale{at(0), at(100), 100};
    const std::vector<LaneEvent> events{{at(10), Event::Start},   {at(20), Event::Crash},
                                        {at(21), Event::Restart}, {at(22), Event::Start},
                                        {at(40), Event::Stop},    {at(90), Event::Start}};
    const auto runs = upIntervals(events, scale, at(95));
    REQUIRE(runs.size() == 3);
    CHECK(runs[0].from_usec == at(10));
    CHECK(runs[0].to_usec == at(20));
    CHECK(runs[1].from_usec == at(22));
    CHECK(runs[1].to_usec == at(40));
    // Still up: up to "now", never past the span.
    CHECK(runs[2].to_usec == at(95));
    CHECK(upIntervals(events, scale, at(500)).back().to_usec == at(100));
}

TEST_CASE("a unit whose first event ends a run was up when the span began") {
    const Scale scale{at(0), at(100), 100};
    const std::vector<LaneEvent> crash_first{{at(30), Event::Crash}};
    const auto runs = upIntervals(crash_first, scale, at(100));
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].from_usec == at(0));
    // A give-up ends nothing: the unit was already down.
    const std::vector<LaneEvent> give_up_first{{at(30), Event::GiveUp}};
    CHECK(upIntervals(give_up_first, scale, at(100)).empty());
}

TEST_CASE("a terminal column shows a crash over a restart over up time") {
    const Scale scale{at(0), at(10), 10};
    const std::vector<LaneEvent> events{{at(0.5), Event::Start},   {at(1.2), Event::Crash},
                                        {at(1.5), Event::Restart}, {at(2.5), Event::Restart},
                                        {at(2.6), Event::Start},   {at(6.1), Event::GiveUp}};
    const auto cells = bucketCells(events, scale, at(10));
    REQUIRE(cells.size() == 10);
    CHECK(cells[0] == Cell::Up);
    CHECK(cells[1] == Cell::Crash);  // the crash wins over the restart in the same column
    CHECK(cells[2] == Cell::Restart);
    CHECK(cells[3] == Cell::Up);
    CHECK(cells[6] == Cell::Crash);  // the give-up
    CHECK(cells[7] == Cell::Empty);  // down after giving up
    CHECK(cells[9] == Cell::Empty);
}

TEST_CASE("marks stay single until more than one shares a column") {
    const Scale scale{at(0), at(10), 10};
    const std::vector<core::Usec> times{at(0.5), at(2.1), at(2.2), at(2.3), at(5.5), at(9.9)};
    const auto groups = groupMarks(times, scale);
    REQUIRE(groups.size() == 4);
    CHECK(groups[0].count == 1);
    CHECK(groups[1].column == 2);
    CHECK(groups[1].first == 1);
    CHECK(groups[1].count == 3);
    CHECK(groups[3].count == 1);
    std::size_t total = 0;
    for (const auto& g : groups) total += g.count;
    CHECK(total == times.size());
    // A looser density keeps three in a column apart.
    CHECK(groupMarks(times, scale, 3).size() == times.size());
}

TEST_CASE("a million marks become at most one group per column") {
    const Scale scale{at(0), at(1000), 1000};
    std::vector<core::Usec> times(1'000'000);
    for (std::size_t i = 0; i < times.size(); ++i)
        times[i] = at(0) + static_cast<core::Usec>(i) * 1000;
    const auto groups = groupMarks(times, scale);
    CHECK(groups.size() <= 1000);
    std::size_t total = 0;
    for (const auto& g : groups) total += g.count;
    CHECK(total == times.size());
}

TEST_CASE("the terminal timeline has a line per unit and a legend, within the width") {
    std::vector<TimelineLane> lanes{
        {"web.service", {{at(1), Event::Start}, {at(30), Event::Crash}, {at(31), Event::Restart}}},
        {"a-very-long-unit-name-that-does-not-fit-anywhere.service", {{at(5), Event::Start}}}};
    for (const int width : {40, 80, 133}) {
        CAPTURE(width);
        const std::string plain = renderTimeline(lanes, at(0), at(60), at(60), {width, false});
        const auto rows = lines(plain);
        REQUIRE(rows.size() == 4);  // axis, two units, legend
        CHECK(rows[1].rfind("web.service", 0) == 0);
        CHECK(rows[2].rfind("a-very-long", 0) == 0);
        CHECK(rows[3].find("█ crash") != std::string::npos);
        CHECK(rows[3].find("▒ restart") != std::string::npos);
        for (const auto& r : rows) CHECK(columnsOf(r) <= static_cast<std::size_t>(width - 1));
        // The unit lines fill the width but for the last column.
        CHECK(columnsOf(rows[1]) == static_cast<std::size_t>(width - 1));
        CHECK(plain.find('\x1b') == std::string::npos);
        const std::string color = renderTimeline(lanes, at(0), at(60), at(60), {width, true});
        CHECK(color.find("\x1b[31m") != std::string::npos);
        for (const auto& r : lines(color))
            CHECK(columnsOf(r) <= static_cast<std::size_t>(width - 1));
    }
}

TEST_CASE("crashes are told apart by how the run ended") {
    CHECK(classifyCrash("exit-code", "exited") == CrashClass::ExitCode);
    CHECK(classifyCrash("signal", "killed") == CrashClass::Signal);
    CHECK(classifyCrash("core-dump", "dumped") == CrashClass::CoreDump);
    CHECK(classifyCrash("oom-kill", "killed") == CrashClass::OomKill);
    CHECK(classifyCrash("watchdog", "killed") == CrashClass::Signal);
    CHECK(classifyCrash("timeout", "") == CrashClass::Other);
    CHECK(classifyCrash("", "exited") == CrashClass::ExitCode);  // from cerberus emit
}

TEST_CASE("the longest crash loop breaks at a gap, a clean stop or a give-up") {
    ReportData data;
    for (const double s : {0.0, 10.0, 20.0, 30.0}) data.add(row("a.service", Event::Crash, s));
    data.add(row("a.service", Event::Crash, 30 + 6 * 60));  // more than 5 min later
    data.add(row("a.service", Event::Stop, 400));
    data.add(row("a.service", Event::Crash, 401));
    std::vector<std::uint32_t> all(data.rows.size());
    for (std::uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    const auto loop = longestCrashLoop(data, all);
    CHECK(loop.crashes == 4);
    CHECK(loop.from_usec == at(0));
    CHECK(loop.to_usec == at(30));
}

TEST_CASE("the report draws one mark per stored row, aggregated ones counting theirs") {
    ReportData data;
    data.add(row("loop.service", Event::Start, 0));
    for (int i = 0; i < 50; ++i) {
        data.add(row("loop.service", Event::Crash, 1 + i * 0.01, "exit-code", "exited", 3));
        data.add(row("loop.service", Event::Restart, 1.005 + i * 0.01));
    }
    data.add(row("loop.service", Event::Crash, 30, "signal", "killed", 9));
    data.add(row("loop.service", Event::GiveUp, 31));
    data.add(row("calm.service", Event::Start, 2));
    data.add(row("calm.service", Event::Stop, 20, "success", "exited", 0));
    data.alerts.push_back({"crashloop", "loop.service", "critical", at(1.2), at(40), 3, false});
    data.silences.push_back({"loop.*", "", at(35), at(50), "maintenance"});
    ReportMeta meta;
    meta.from_usec = at(0);
    meta.to_usec = at(60);
    meta.db_path = "/tmp/x.db";
    const std::string html = renderReport(data, meta);

    CHECK(marks(html, "loop.service", "crash") == 51);
    CHECK(marks(html, "loop.service", "restart") == 50);
    CHECK(marks(html, "loop.service", "give_up") == 1);
    CHECK(marks(html, "loop.service", "start") == 1);
    CHECK(marks(html, "calm.service", "start") == 1);
    CHECK(marks(html, "calm.service", "stop") == 1);
    CHECK(marks(html, "calm.service", "crash") == 0);
    // 50 crashes in half a second on a 1000-column minute: aggregated, not 50 elements.
    CHECK(occurrences(html, "data-kind=\"crash\"") < 20);
    CHECK(html.find("class=\"agg k-crash c-exit-code") != std::string::npos);
    CHECK(html.find("c-signal") != std::string::npos);
    // The alert band starts and ends where it was recorded.
    CHECK(html.find(fmt::format("data-fired-usec=\"{}\" data-resolved-usec=\"{}\"", at(1.2),
                                at(40))) != std::string::npos);
    CHECK(marks(html, "loop.service", "silence") == 1);
    CHECK(marks(html, "calm.service", "silence") == 0);
    // A single mark's title has its time, exit status and InvocationID.
    CHECK(html.find("<title>2025-12-01T14:40:30.000Z crash: signal, killed 9; InvocationID "
                    "0123456789abcdef0123456789abcdef</title>") != std::string::npos);
    // The worst unit first, in the lanes and the table.
    CHECK(html.find("id=\"lane-0\" data-unit=\"loop.service\"") != std::string::npos);
}

TEST_CASE("the report fetches nothing and runs no script") {
    ReportData data;
    data.add(row("<script>alert(1)</script>.service", Event::Start, 0));
    data.add(row("bad-\xff-utf8.service", Event::Start, 1));
    ReportMeta meta;
    meta.from_usec = at(0);
    meta.to_usec = at(10);
    const std::string html = renderReport(data, meta);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;.service") != std::string::npos);
    CHECK(html.find("bad-\xEF\xBF\xBD-utf8.service") != std::string::npos);
    CHECK(html.find("\xff") == std::string::npos);
    CHECK(html.find("src=") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);
    CHECK(html.find("url(http") == std::string::npos);
    CHECK(html.find("href=\"http") == std::string::npos);
}

TEST_CASE("an empty span is a page that says so") {
    ReportData data;
    ReportMeta meta;
    meta.from_usec = at(0);
    meta.to_usec = at(10);
    const std::string html = renderReport(data, meta);
    CHECK(html.find("No transitions or alerts in this span.") != std::string::npos);
    CHECK(html.rfind("</html>\n") == html.size() - 8);
}
