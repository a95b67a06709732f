#include "core/transition.hpp"

#include "core/names.hpp"
#include "core/text.hpp"

namespace cerberus::core {

namespace {

constexpr EnumName<Event> EVENT_NAMES[] = {{Event::Start, "start"}, {Event::Stop, "stop"},
                                           {Event::Crash, "crash"}, {Event::Restart, "restart"},
                                           {Event::Fail, "fail"},   {Event::GiveUp, "give_up"}};

constexpr EnumName<Source> SOURCE_NAMES[] = {{Source::Systemd, "systemd"},
                                             {Source::Reconcile, "reconcile"},
                                             {Source::Emit, "emit"},
                                             {Source::Supervisor, "supervisor"}};

}  // namespace

std::string_view toString(Event event) { return nameOf(EVENT_NAMES, event); }
std::optional<Event> parseEvent(std::string_view text) { return valueOf(EVENT_NAMES, text); }

std::string_view eventNoun(Event event, bool many) {
    switch (event) {
    case Event::Start: return many ? "starts" : "start";
    case Event::Stop: return many ? "stops" : "stop";
    case Event::Crash: return many ? "crashes" : "crash";
    case Event::Restart: return many ? "restarts" : "restart";
    case Event::Fail: return many ? "failures" : "failure";
    case Event::GiveUp: return many ? "give-ups" : "give-up";
    }
    return many ? "events" : "event";
}

std::string countOf(Event event, std::uint64_t count) {
    return plural(count, eventNoun(event, false), eventNoun(event, true));
}

std::string_view eventTitle(Event event) {
    switch (event) {
    case Event::Start: return "Starts";
    case Event::Stop: return "Stops";
    case Event::Crash: return "Crashes";
    case Event::Restart: return "Restarts";
    case Event::Fail: return "Failures";
    case Event::GiveUp: return "Give-ups";
    }
    return "Events";
}
std::string_view toString(Source source) { return nameOf(SOURCE_NAMES, source); }
std::optional<Source> parseSource(std::string_view text) { return valueOf(SOURCE_NAMES, text); }

std::string_view exitCodeName(int exec_main_code) {
    switch (exec_main_code) {
    case 1: return "exited";
    case 2: return "killed";
    case 3: return "dumped";
    default: return "";
    }
}

int parseExitCodeName(std::string_view name) {
    if (name == "exited") return 1;
    if (name == "killed") return 2;
    if (name == "dumped") return 3;
    return 0;
}

}  // namespace cerberus::core
