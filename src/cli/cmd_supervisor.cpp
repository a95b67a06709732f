#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/time.hpp"
#include "ingest/emit.hpp"

namespace cerberus::cli {

namespace {

constexpr std::size_t PAYLOAD_MAX = 1 << 20;
constexpr std::size_t REFUSED_LOGGED_MAX = 1024;
constexpr std::size_t SHOWN_NAME_MAX = 256;

// A name as a log line can carry it: bytes outside printable ASCII as \xNN, and cut.
std::string shown(std::string_view name) {
    std::string out;
    for (const unsigned char c : name.substr(0, SHOWN_NAME_MAX)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
            continue;
        }
        char escaped[5];
        std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
        out += escaped;
    }
    if (name.size() > SHOWN_NAME_MAX) out += "...";
    return out;
}

struct ListenerArgs {
    std::string socket;
    std::string db;
};

constexpr CommandHelp SUPERVISOR_LISTENER_HELP{
    "supervisor-listener",
    "Run as a supervisord [eventlistener] (events=PROCESS_STATE) and record its programs' "
    "starts, exits and give-ups as units 'supervisor:NAME'"};

// One READY/event/RESULT round of supervisord's event listener protocol. Returns false at
// the end of input. Only the protocol goes to stdout; everything else to stderr.
bool serveOne(const ListenerArgs& args, const core::Clock& clock, const std::string& self,
              std::set<std::string>& refused) {
    std::cout << "READY\n" << std::flush;
    std::string line;
    if (!std::getline(std::cin, line)) return false;
    const auto header = ingest::parseSupervisorHeader(line);
    if (!header || header->length > PAYLOAD_MAX)
        throw core::Error(core::ExitCode::Failure,
                          "supervisord sent a header that is not a listener header: '" + line +
                              "'; is this running as an [eventlistener:...]?");
    std::string payload(header->length, '\0');
    if (!std::cin.read(payload.data(), static_cast<std::streamsize>(payload.size()))) return false;

    bool ok = true;
    auto request = ingest::supervisorRequest(header->event_name, payload);
    // Our own states are not a service's.
    std::string why;
    if (request) {
        why = ingest::checkUnitName(request->unit);
        if (why.empty()) why = ingest::checkNotSystemdUnit(request->unit);
    }
    if (request && !why.empty()) {
        // Sent again, it would be refused again: logged, and answered OK.
        const std::string name = shown(request->unit);
        if (refused.size() < REFUSED_LOGGED_MAX && refused.insert(name).second)
            std::fprintf(stderr,
                         "cerberus: ignoring the events of '%s': %s; logged once per unit\n",
                         name.c_str(), why.c_str());
    } else if (request && request->unit != "supervisor:" + self) {
        request->ts_usec = clock.realtime();
        request->mono_usec = clock.monotonic();
        try {
            // Sent again, an event the daemon may still store could be stored twice (a
            // false restart and crash); one possibly late is the lesser harm.
            if (auto unknown = storeEvent(*request, args.socket, args.db))
                std::fprintf(stderr, "cerberus: %s: %s\n", request->unit.c_str(), unknown->c_str());
        } catch (const core::Error& e) {
            // FAIL: supervisord keeps the event and sends it again later.
            std::fprintf(stderr, "cerberus: %s: %s; supervisord will send it again\n",
                         request->unit.c_str(), e.what());
            ok = false;
        }
    }
    std::cout << (ok ? "RESULT 2\nOK" : "RESULT 4\nFAIL") << std::flush;
    return true;
}

int runListener(const ListenerArgs& args) {
    const core::SystemClock clock;
    const char* self = std::getenv("SUPERVISOR_PROCESS_NAME");
    std::set<std::string> refused;
    while (serveOne(args, clock, self ? self : "", refused)) {
    }
    return 0;
}

}  // namespace

void addSupervisorListenerCommand(CLI::App& app, Action& action) {
    const auto [cmd, args] = addCommand<ListenerArgs>(app, SUPERVISOR_LISTENER_HELP);
    addEmitTargetOptions(cmd, args->socket, args->db);
    setAction(cmd, action, args, runListener);
}

}  // namespace cerberus::cli
