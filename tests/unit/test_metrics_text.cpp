// /metrics as Prometheus reads it: the --metrics address forms, and the text format with
// HELP/TYPE lines, every event and source listed, and escaped label values.

#include <doctest/doctest.h>

#include <string>

#include "daemon/metrics.hpp"

using namespace cerberus;
using daemon::parseMetricsAddress;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("an address is a host and a port, with brackets around an IPv6 address") {
    const auto v4 = parseMetricsAddress("127.0.0.1:9469");
    REQUIRE(v4);
    CHECK(v4->host == "127.0.0.1");
    CHECK(v4->port == 9469);
    CHECK(v4->describe() == "127.0.0.1:9469");
    const auto v6 = parseMetricsAddress("[::1]:9469");
    REQUIRE(v6);
    CHECK(v6->host == "::1");
    CHECK(v6->describe() == "[::1]:9469");
    CHECK(parseMetricsAddress("localhost:1")->port == 1);
    CHECK(parseMetricsAddress("0.0.0.0:65535")->port == 65535);
}

TEST_CASE("an address without a host, a port or brackets around IPv6 is refused") {
    for (const char* bad : {"", "9469", ":9469", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                            "127.0.0.1:65536", "127.0.0.1:94x9", "127.0.0.1:-1", "::1:9469",
                            "[::1]9469", "[::1]:", "[]:9469", "host:+80"})
        CHECK_MESSAGE(!parseMetricsAddress(bad), bad);
}

TEST_CASE("every family has HELP and TYPE lines and every event and source is listed") {
    daemon::MetricsSnapshot snapshot;
    snapshot.transitions[{core::Event::Crash, core::Source::Systemd}] = 7;
    snapshot.transitions[{core::Event::Restart, core::Source::Reconcile}] = 2;
    snapshot.alerts_firing = {{"crashloop", 1}, {"give-up", 0}};
    snapshot.notifications[{"hook", "sent"}] = 3;
    snapshot.outbox_pending = 0;
    snapshot.units_tracked = 42;
    snapshot.bus_connected = true;
    snapshot.last_reconcile_usec = 1'800'000'000'250'000;
    const std::string text = daemon::renderMetrics(snapshot);

    CHECK(contains(text, "# TYPE cerberus_transitions_total counter\n"));
    CHECK(contains(text, "cerberus_transitions_total{event=\"crash\",source=\"systemd\"} 7\n"));
    CHECK(contains(text, "cerberus_transitions_total{event=\"restart\",source=\"reconcile\"} 2\n"));
    CHECK(contains(text, "cerberus_transitions_total{event=\"give_up\",source=\"emit\"} 0\n"));
    CHECK(contains(text, "# TYPE cerberus_alerts_firing gauge\n"));
    CHECK(contains(text, "cerberus_alerts_firing{rule=\"crashloop\"} 1\n"));
    CHECK(contains(text, "cerberus_alerts_firing{rule=\"give-up\"} 0\n"));
    CHECK(contains(text, "cerberus_notifications_total{receiver=\"hook\",outcome=\"sent\"} 3\n"));
    CHECK(contains(text, "cerberus_outbox_pending 0\n"));
    CHECK(contains(text, "cerberus_units_tracked 42\n"));
    CHECK(contains(text, "cerberus_bus_connected 1\n"));
    CHECK(contains(text, "cerberus_last_reconcile_timestamp_seconds 1800000000.250\n"));
    CHECK(contains(text, "cerberus_build_info{version=\"" CERBERUS_VERSION "\"} 1\n"));

    // Each sample's family was announced before it, once.
    std::string announced;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = text.find('\n', start);
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (line.starts_with("# TYPE ")) {
            const std::string name = line.substr(7, line.find(' ', 7) - 7);
            CHECK_MESSAGE(!contains(announced, " " + name + " "), name);
            announced += " " + name + " ";
            continue;
        }
        if (line.starts_with("#")) continue;
        const std::string name = line.substr(0, line.find_first_of("{ "));
        CHECK_MESSAGE(contains(announced, " " + name + " "), line);
    }
}

TEST_CASE("label values escape backslash, double quote and newline") {
    daemon::MetricsSnapshot snapshot;
    snapshot.alerts_firing = {{"a\\b\"c\nd", 1}};
    CHECK(contains(daemon::renderMetrics(snapshot),
                   "cerberus_alerts_firing{rule=\"a\\\\b\\\"c\\nd\"} 1\n"));
}

TEST_CASE("an outbox that could not be read is left out, not shown as empty") {
    daemon::MetricsSnapshot snapshot;
    const std::string text = daemon::renderMetrics(snapshot);
    CHECK(!contains(text, "cerberus_outbox_pending"));
    CHECK(!contains(text, "cerberus_last_reconcile_timestamp_seconds"));
}

namespace {

core::Transition row(const std::string& unit, core::Event event,
                     core::Source source = core::Source::Systemd) {
    core::Transition t;
    t.unit = unit;
    t.event = event;
    t.source = source;
    return t;
}

core::UnitSnapshot service(const std::string& unit) {
    core::UnitSnapshot s;
    s.unit = unit;
    s.n_restarts = 0;
    return s;
}

}  // namespace

TEST_CASE("a unit's restarts and crashes are counted from its rows, other events are not") {
    daemon::UnitCounters counters;
    counters.observe(service("web.service"));
    for (const auto event :
         {core::Event::Start, core::Event::Crash, core::Event::Restart, core::Event::Crash,
          core::Event::Fail, core::Event::Stop, core::Event::GiveUp})
        counters.observe(row("web.service", event));
    counters.observe(row("db.service", core::Event::Restart, core::Source::Reconcile));
    const auto counts = counters.counts();
    CHECK(counts->at("web.service") == daemon::UnitCounts{1, 2});
    CHECK(counts->at("db.service") == daemon::UnitCounts{1, 0});
    CHECK(counters.dropped() == 0);
}

TEST_CASE("services are listed at 0 before their first crash; devices and mounts are not") {
    daemon::UnitCounters counters;
    counters.observe(service("idle.service"));
    core::UnitSnapshot device;
    device.unit = "dev-sda.device";  // n_restarts unknown: not a service
    counters.observe(device);
    counters.observe(row("dev-sda.device", core::Event::Start));
    counters.observe(row("home.mount", core::Event::Stop));
    // A systemd service's own start row does not list it: its snapshot does.
    counters.observe(row("other.service", core::Event::Start));
    // Units of other inits have no snapshot: their first row lists them.
    counters.observe(row("upstart-job", core::Event::Start, core::Source::Emit));
    const auto counts = counters.counts();
    CHECK(counts->size() == 2);
    CHECK(counts->at("idle.service") == daemon::UnitCounts{});
    CHECK(counts->at("upstart-job") == daemon::UnitCounts{});
}

TEST_CASE("at the cap a crashing unit takes the place of one at 0, then units are dropped") {
    daemon::UnitCounters counters(2);
    counters.observe(service("a.service"));
    counters.observe(service("b.service"));
    counters.observe(service("c.service"));  // full: not listed, and nothing is lost
    CHECK(counters.counts()->size() == 2);
    CHECK(counters.dropped() == 0);

    counters.observe(row("c.service", core::Event::Crash));  // takes a.service's place
    CHECK(counters.counts()->contains("c.service"));
    CHECK(counters.counts()->size() == 2);
    counters.observe(row("b.service", core::Event::Restart));
    counters.observe(row("d.service", core::Event::Crash));  // every listed unit has counts
    counters.observe(row("d.service", core::Event::Crash));
    counters.observe(row("e.service", core::Event::Restart));
    const auto counts = counters.counts();
    CHECK(counts->size() == 2);
    CHECK(!counts->contains("d.service"));
    CHECK(counts->at("c.service") == daemon::UnitCounts{0, 1});
    CHECK(counts->at("b.service") == daemon::UnitCounts{1, 0});
    CHECK(counters.dropped() == 2);  // d and e, each once
}

TEST_CASE("the counts shared with a snapshot do not change after it was taken") {
    daemon::UnitCounters counters;
    counters.observe(row("web.service", core::Event::Crash));
    const auto before = counters.counts();
    CHECK(counters.counts() == before);  // unchanged: the same copy is shared
    counters.observe(row("web.service", core::Event::Crash));
    CHECK(before->at("web.service").crashes == 1);
    CHECK(counters.counts()->at("web.service").crashes == 2);
}

TEST_CASE("unit series carry unit and host, escaped, with the dropped count") {
    daemon::MetricsSnapshot snapshot;
    snapshot.host = "node-1";
    snapshot.unit_counts = std::make_shared<const daemon::UnitCountsByName>(
        daemon::UnitCountsByName{{"web.service", {3, 4}}, {"a\\x2db\"\n.service", {0, 1}}});
    snapshot.unit_series_dropped = 5;
    const std::string text = daemon::renderMetrics(snapshot);
    CHECK(contains(text, "# TYPE cerberus_unit_restarts_total counter\n"));
    CHECK(contains(text, "# TYPE cerberus_unit_crashes_total counter\n"));
    CHECK(contains(text, "cerberus_unit_restarts_total{unit=\"web.service\",host=\"node-1\"} 3\n"));
    CHECK(contains(text, "cerberus_unit_crashes_total{unit=\"web.service\",host=\"node-1\"} 4\n"));
    CHECK(contains(text,
                   "cerberus_unit_crashes_total{unit=\"a\\\\x2db\\\"\\n.service\",host=\"node-1\"} "
                   "1\n"));
    CHECK(contains(text, "cerberus_unit_series_dropped_total 5\n"));
    CHECK(contains(text, "units are listed"));
}

TEST_CASE("a refused reload shows 0 and keeps the time of the last accepted one") {
    daemon::MetricsSnapshot snapshot;
    snapshot.rules_reload.accepted(1'800'000'000'500'000);
    std::string text = daemon::renderMetrics(snapshot);
    CHECK(contains(text, "# TYPE cerberus_rules_reload_success gauge\n"));
    CHECK(contains(text, "cerberus_rules_reload_success 1\n"));
    CHECK(contains(text, "# TYPE cerberus_rules_last_reload_timestamp_seconds gauge\n"));
    CHECK(contains(text, "cerberus_rules_last_reload_timestamp_seconds 1800000000.500\n"));
    snapshot.rules_reload.refused();
    text = daemon::renderMetrics(snapshot);
    CHECK(contains(text, "cerberus_rules_reload_success 0\n"));
    CHECK(contains(text, "cerberus_rules_last_reload_timestamp_seconds 1800000000.500\n"));
}

TEST_CASE("/proc/PID/stat is read from the last parenthesis, with ticks and pages") {
    // comm "(a) b)" holds a space and parentheses; utime 250 and stime 150 ticks, start 1000
    // ticks after boot, vsize 123456789 bytes, rss 2000 pages.
    const std::string stat =
        "4242 ((a) b)) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 150 0 0 20 0 3 0 1000 "
        "123456789 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    const auto stats = daemon::parseProcStat(stat, 100, 4096, 1'700'000'000);
    REQUIRE(stats);
    CHECK(stats->cpu_seconds == doctest::Approx(4.0));
    CHECK(stats->start_time_seconds == doctest::Approx(1'700'000'010.0));
    CHECK(stats->virtual_bytes == 123456789);
    CHECK(stats->resident_bytes == 2000 * 4096);
    CHECK(!daemon::parseProcStat("4242 (x) S 1 2", 100, 4096, 0));
    CHECK(!daemon::parseProcStat("no parenthesis", 100, 4096, 0));
    CHECK(!daemon::parseProcStat(stat, 0, 4096, 0));
}

TEST_CASE("process series as client libraries name them, from this process") {
    const auto process = daemon::readProcessStats();
    REQUIRE(process);
    CHECK(process->resident_bytes > 0);
    CHECK(process->virtual_bytes >= process->resident_bytes);
    REQUIRE(process->open_fds);
    CHECK(*process->open_fds >= 3);  // stdin, stdout, stderr at least
    const std::string text = daemon::renderMetrics(daemon::MetricsSnapshot{}, process);
    for (const char* family :
         {"process_cpu_seconds_total counter", "process_open_fds gauge", "process_max_fds gauge",
          "process_virtual_memory_bytes gauge", "process_resident_memory_bytes gauge",
          "process_start_time_seconds gauge"})
        CHECK_MESSAGE(contains(text, std::string("# TYPE ") + family + "\n"), family);
    CHECK(!contains(daemon::renderMetrics(daemon::MetricsSnapshot{}), "process_"));
}
