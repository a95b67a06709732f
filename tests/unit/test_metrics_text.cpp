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
