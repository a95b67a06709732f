#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/transition.hpp"
#include "ingest/emit.hpp"

using namespace cerberus;
using core::Event;
using ingest::EmitEvent;
using ingest::EmitRequest;

namespace {

EmitRequest request(EmitEvent event, std::optional<int> exit_status = std::nullopt,
                    std::optional<int> signal = std::nullopt, core::Usec ts = 1000) {
    EmitRequest r;
    r.unit = "web";
    r.event = event;
    r.exit_status = exit_status;
    r.signal = signal;
    r.ts_usec = ts;
    r.mono_usec = ts / 10;
    return r;
}

// "start crash restart ..." for one readable comparison.
std::string events(const std::vector<core::Transition>& ts) {
    std::string out;
    for (const auto& t : ts) out += (out.empty() ? "" : " ") + std::string(core::toString(t.event));
    return out;
}

std::string name(Event event) { return std::string(core::toString(event)); }

// Feeds a sequence of events through mapEmit as the store would see them.
std::vector<core::Transition> feed(const std::vector<EmitRequest>& requests) {
    std::vector<core::Transition> stored;
    for (const auto& r : requests) {
        std::optional<core::Transition> last;
        if (!stored.empty()) last = stored.back();
        for (auto& t : ingest::mapEmit(r, last)) stored.push_back(t);
    }
    return stored;
}

}  // namespace

TEST_CASE("starting alone stores nothing; started is a start from source emit") {
    CHECK(ingest::mapEmit(request(EmitEvent::Starting), std::nullopt).empty());
    const auto out = ingest::mapEmit(request(EmitEvent::Started), std::nullopt);
    REQUIRE(out.size() == 1);
    CHECK(name(out[0].event) == name(Event::Start));
    CHECK(core::toString(out[0].source) == "emit");
    CHECK(out[0].unit == "web");
    CHECK(out[0].ts_usec == 1000);
    CHECK(out[0].mono_usec == 100);
}

TEST_CASE("a run that ends with status 0 or none is a stop, non-zero or a signal a crash") {
    auto stop = ingest::mapEmit(request(EmitEvent::Stopped, 0), std::nullopt);
    REQUIRE(stop.size() == 1);
    CHECK(name(stop[0].event) == name(Event::Stop));
    CHECK(stop[0].result == "success");
    CHECK(name(ingest::mapEmit(request(EmitEvent::Stopping), std::nullopt)[0].event) ==
          name(Event::Stop));

    auto crash = ingest::mapEmit(request(EmitEvent::Stopping, 3), std::nullopt);
    CHECK(name(crash[0].event) == name(Event::Crash));
    CHECK(crash[0].result == "exit-code");
    CHECK(crash[0].exit_code == "exited");
    CHECK(crash[0].exit_status == 3);

    auto killed = ingest::mapEmit(request(EmitEvent::Stopped, std::nullopt, SIGSEGV), std::nullopt);
    CHECK(name(killed[0].event) == name(Event::Crash));
    CHECK(killed[0].result == "signal");
    CHECK(killed[0].exit_code == "killed");
    CHECK(killed[0].exit_status == SIGSEGV);
}

TEST_CASE("a start after a crash is a respawn: restart then start") {
    const auto stored =
        feed({request(EmitEvent::Started, {}, {}, 1000), request(EmitEvent::Stopped, 1, {}, 2000),
              request(EmitEvent::Started, {}, {}, 3000)});
    CHECK(events(stored) == "start crash restart start");
    CHECK(stored[2].exit_status == 1);
    CHECK(stored[2].sub_state == "auto-restart");
}

TEST_CASE("a start after a clean stop is an operator's start, not a restart") {
    const auto stored = feed(
        {request(EmitEvent::Started), request(EmitEvent::Stopped, 0), request(EmitEvent::Started)});
    CHECK(events(stored) == "start stop start");
}

TEST_CASE("Upstart respawns emit stopping without starting: each further end implies a restart") {
    const auto stored = feed(
        {request(EmitEvent::Started, {}, {}, 1000), request(EmitEvent::Stopping, 2, {}, 2000),
         request(EmitEvent::Stopping, 2, {}, 2500), request(EmitEvent::Stopping, 2, {}, 3000)});
    CHECK(events(stored) == "start crash restart crash restart crash");
    // The respawn followed the previous end: the run it began lasted until the next end.
    CHECK(stored[2].ts_usec == 2000);
    CHECK(stored[4].ts_usec == 2500);
}

TEST_CASE("stopped after the stopping of the same run stores nothing more") {
    const auto stored = feed({request(EmitEvent::Started), request(EmitEvent::Stopping, 1),
                              request(EmitEvent::Stopped, 1)});
    CHECK(events(stored) == "start crash");
}

TEST_CASE("runit's finish reports every end as stopped: consecutive ends are respawns") {
    const auto stored = feed({request(EmitEvent::Stopped, 1), request(EmitEvent::Stopped, 1),
                              request(EmitEvent::Stopped, 1)});
    CHECK(events(stored) == "crash restart crash restart crash");
}

TEST_CASE("a request survives its encoding") {
    auto r = request(EmitEvent::Stopped, 7, SIGKILL, 123456789);
    const auto parsed = ingest::parseRequest(ingest::encodeRequest(r), r.ts_usec + 1, r.mono_usec);
    REQUIRE(parsed.request);
    CHECK(parsed.request->unit == "web");
    CHECK(ingest::toString(parsed.request->event) == "stopped");
    CHECK(parsed.request->exit_status == 7);
    CHECK(parsed.request->signal == SIGKILL);
    CHECK(parsed.request->ts_usec == 123456789);
    CHECK(parsed.request->mono_usec == 12345678);
}

TEST_CASE("missing times are the receiver's") {
    const auto parsed = ingest::parseRequest(R"({"unit":"a","event":"started"})", 5, 6);
    REQUIRE(parsed.request);
    CHECK(parsed.request->ts_usec == 5);
    CHECK(parsed.request->mono_usec == 6);
}

TEST_CASE("bad requests are refused with the field named") {
    auto error = [](const char* line) { return ingest::parseRequest(line, 0, 0).error; };
    CHECK(error("garbage") == "the request is not a JSON object on one line");
    CHECK(error("[1]") == "the request is not a JSON object on one line");
    CHECK(error(R"({"event":"started"})") == "field 'unit' must be a string");
    CHECK(error(R"({"unit":"a b","event":"started"})").find("field 'unit'") == 0);
    CHECK(error(R"({"unit":"a","event":"boom"})").find("field 'event'") == 0);
    CHECK(error(R"({"unit":"a","event":"started","exit_status":1})") ==
          "field 'exit_status' applies to stopping and stopped only");
    CHECK(error(R"({"unit":"a","event":"stopped","exit_status":256})") ==
          "field 'exit_status' must be an integer from 0 to 255");
    CHECK(error(R"({"unit":"a","event":"stopped","signal":"x"})").find("field 'signal'") == 0);
    CHECK(error(R"({"unit":"a","event":"stopped","extra":1})") == "unknown field 'extra'");
}

TEST_CASE("a request's times must be near the receiver's clocks") {
    using ingest::EMIT_CLOCK_AHEAD_USEC;
    using ingest::EMIT_CLOCK_PAST_USEC;
    const core::Usec now = 1'800'000'000'000'000;
    const core::Usec mono = 3'600'000'000;
    auto parse = [&](core::Usec ts, core::Usec mono_usec) {
        return ingest::parseRequest(R"({"unit":"a","event":"started","ts_usec":)" +
                                        std::to_string(ts) + R"(,"mono_usec":)" +
                                        std::to_string(mono_usec) + "}",
                                    now, mono);
    };
    CHECK(parse(now - EMIT_CLOCK_PAST_USEC, 0).request);
    CHECK(parse(now + EMIT_CLOCK_AHEAD_USEC, mono + EMIT_CLOCK_AHEAD_USEC).request);
    CHECK(parse(now + EMIT_CLOCK_AHEAD_USEC + 1, mono).error.find("field 'ts_usec'") == 0);
    CHECK(parse(now - EMIT_CLOCK_PAST_USEC - 1, mono).error.find("field 'ts_usec'") == 0);
    CHECK(parse(INT64_MAX, mono).error.find("field 'ts_usec'") == 0);
    CHECK(parse(now, mono + EMIT_CLOCK_AHEAD_USEC + 1).error.find("field 'mono_usec'") == 0);
    CHECK(parse(now, -1).error.find("field 'mono_usec'") == 0);
}

TEST_CASE("unit names are non-empty, bounded, printable") {
    CHECK(ingest::checkUnitName("nginx").empty());
    CHECK(ingest::checkUnitName("tty@1").empty());
    CHECK_FALSE(ingest::checkUnitName("").empty());
    CHECK_FALSE(ingest::checkUnitName(std::string(ingest::UNIT_NAME_MAX + 1, 'a')).empty());
    CHECK(ingest::checkUnitName(std::string(ingest::UNIT_NAME_MAX, 'a')).empty());
    CHECK_FALSE(ingest::checkUnitName("a\nb").empty());
    CHECK_FALSE(ingest::checkUnitName("a b").empty());
}

TEST_CASE("systemd's unit names are refused: cerberus hears those units from systemd") {
    for (const char* name :
         {"dbus.service", "supervisor:api.service", "a.socket", "b.timer", "c.mount", "d.automount",
          "e.swap", "f.target", "g.path", "h.slice", "i.scope", "j.device", "tty@1.service"})
        CHECK_MESSAGE(
            ingest::checkNotSystemdUnit(name).find("like a systemd unit") != std::string::npos,
            name);
    for (const char* name : {"web", "tty@1", "supervisor:web", "upstart-web", "a.services",
                             "my.service.d", ".service", "nginx.conf"})
        CHECK_MESSAGE(ingest::checkNotSystemdUnit(name).empty(), name);
}

TEST_CASE("supervisord names that are no usable unit are left to the listener to refuse") {
    const auto named = ingest::supervisorRequest(
        "PROCESS_STATE_RUNNING", "processname:api.service groupname:api.service pid:9");
    REQUIRE(named);
    CHECK(named->unit == "supervisor:api.service");
    CHECK_FALSE(ingest::checkNotSystemdUnit(named->unit).empty());
}

TEST_CASE("signals by number or name") {
    CHECK(ingest::parseSignal("11") == SIGSEGV);
    CHECK(ingest::parseSignal("SEGV") == SIGSEGV);
    CHECK(ingest::parseSignal("SIGKILL") == SIGKILL);
    CHECK_FALSE(ingest::parseSignal("0"));
    CHECK_FALSE(ingest::parseSignal("NOPE"));
    CHECK_FALSE(ingest::parseSignal("9x"));
}

TEST_CASE("replies round trip") {
    const auto ok = ingest::parseReply(ingest::encodeReply({true, 2, {}}));
    REQUIRE(ok);
    CHECK(ok->ok);
    CHECK(ok->stored == 2);
    const auto no = ingest::parseReply(ingest::encodeReply({false, 0, "uid 5 is not root"}));
    REQUIRE(no);
    CHECK_FALSE(no->ok);
    CHECK(no->error == "uid 5 is not root");
    CHECK_FALSE(no->stopping);
    const auto stopping = ingest::parseReply(ingest::encodeReply({false, 0, "stopping", true}));
    REQUIRE(stopping);
    CHECK_FALSE(stopping->ok);
    CHECK(stopping->stopping);
    CHECK_FALSE(ingest::parseReply("nonsense"));
}

TEST_CASE("a failure without a status is a crash with no result; gave_up is a give_up") {
    auto r = request(EmitEvent::Stopped);
    r.failed = true;
    const auto crash = ingest::mapEmit(r, std::nullopt);
    REQUIRE(crash.size() == 1);
    CHECK(name(crash[0].event) == "crash");
    CHECK(crash[0].result.empty());
    CHECK_FALSE(crash[0].exit_status);
    const auto gave_up = ingest::mapEmit(request(EmitEvent::GaveUp), crash[0]);
    CHECK(events(gave_up) == "give_up");
}

TEST_CASE("supervisord's listener header gives the event name and payload length") {
    const auto header = ingest::parseSupervisorHeader(
        "ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 "
        "eventname:PROCESS_STATE_EXITED len:84");
    REQUIRE(header);
    CHECK(header->event_name == "PROCESS_STATE_EXITED");
    CHECK(header->length == 84);
    CHECK_FALSE(ingest::parseSupervisorHeader("eventname:X"));
    CHECK_FALSE(ingest::parseSupervisorHeader("eventname:X len:1x"));
}

TEST_CASE("supervisord's process states map to emit events with source supervisor") {
    auto map = [](const char* state, const char* payload) {
        return ingest::supervisorRequest(std::string("PROCESS_STATE_") + state, payload);
    };
    const auto running = map("RUNNING", "processname:web groupname:web from_state:STARTING pid:9");
    REQUIRE(running);
    CHECK(running->unit == "supervisor:web");
    CHECK(ingest::toString(running->event) == "started");
    CHECK(core::toString(running->source) == "supervisor");

    const auto crashed =
        map("EXITED", "processname:w_01 groupname:w from_state:RUNNING expected:0 pid:9");
    REQUIRE(crashed);
    CHECK(crashed->unit == "supervisor:w:w_01");
    CHECK(ingest::toString(crashed->event) == "stopped");
    CHECK(crashed->failed);
    CHECK_FALSE(
        map("EXITED", "processname:a groupname:a from_state:RUNNING expected:1 pid:9")->failed);
    CHECK(map("BACKOFF", "processname:a groupname:a from_state:STARTING tries:1")->failed);
    CHECK(ingest::toString(map("FATAL", "processname:a groupname:a from_state:BACKOFF")->event) ==
          "gave_up");
    CHECK_FALSE(map("STOPPING", "processname:a groupname:a from_state:RUNNING pid:9"));
    CHECK_FALSE(ingest::supervisorRequest("TICK_5", "when:1"));
}

TEST_CASE("failed and source survive the request encoding") {
    auto r = request(EmitEvent::Stopped);
    r.failed = true;
    r.source = core::Source::Supervisor;
    const auto parsed = ingest::parseRequest(ingest::encodeRequest(r), 1, 1);
    REQUIRE(parsed.request);
    CHECK(parsed.request->failed);
    CHECK(core::toString(parsed.request->source) == "supervisor");
    CHECK(
        ingest::parseRequest(R"({"unit":"a","event":"started","source":"systemd"})", 0, 0).error ==
        "field 'source' must be emit or supervisor");
}

namespace {

// A listening socket in a fresh directory, standing in for a daemon.
struct FakeDaemon {
    std::string dir;
    std::string path;
    int fd = -1;

    FakeDaemon() {
        char tmpl[] = "/tmp/cerberus-emit-test.XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        path = dir + "/emit.sock";
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, path.c_str());
        REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(listen(fd, 4) == 0);
    }
    ~FakeDaemon() {
        if (fd >= 0) close(fd);
        unlink(path.c_str());
        rmdir(dir.c_str());
    }
};

}  // namespace

TEST_CASE("a daemon that is stopping and took nothing leaves the event to the client") {
    FakeDaemon daemon;
    std::thread server([&] {
        const int connection = accept(daemon.fd, nullptr, nullptr);
        char buffer[4096];
        [[maybe_unused]] const auto n = read(connection, buffer, sizeof buffer);
        const std::string reply =
            ingest::encodeReply({false, 0, "the daemon is stopping", true}) + "\n";
        [[maybe_unused]] const auto w = write(connection, reply.data(), reply.size());
        close(connection);
    });
    const auto sent =
        ingest::sendEvent(daemon.path, request(EmitEvent::Started), 5 * core::USEC_PER_SEC);
    server.join();
    CHECK(sent.status == ingest::SendStatus::NoDaemon);
}

TEST_CASE("a connection reset in the backlog, never read, leaves the event to the client") {
    FakeDaemon daemon;
    auto sending = std::async(std::launch::async, [&] {
        return ingest::sendEvent(daemon.path, request(EmitEvent::Started), 5 * core::USEC_PER_SEC);
    });
    // The listening socket turns readable once the client waits in its backlog.
    pollfd pfd{daemon.fd, POLLIN, 0};
    REQUIRE(poll(&pfd, 1, 5000) == 1);
    close(daemon.fd);
    daemon.fd = -1;
    const auto sent = sending.get();
    CHECK(sent.status == ingest::SendStatus::NoDaemon);
}

TEST_CASE("a daemon that takes the request and never answers leaves it unknown") {
    FakeDaemon daemon;
    auto sending = std::async(std::launch::async, [&] {
        return ingest::sendEvent(daemon.path, request(EmitEvent::Started),
                                 200 * core::USEC_PER_MSEC);
    });
    const int connection = accept(daemon.fd, nullptr, nullptr);
    const auto sent = sending.get();
    close(connection);
    CHECK(sent.status == ingest::SendStatus::Unknown);
}
