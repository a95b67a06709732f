#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "core/time.hpp"
#include "ingest/emit.hpp"
#include "store/store.hpp"

namespace cerberus::cli {

namespace {

constexpr core::Usec REPLY_TIMEOUT_USEC = 5 * core::USEC_PER_SEC;
constexpr core::Usec HELD_RETRY_USEC = 50 * core::USEC_PER_MSEC;

struct EmitArgs {
    std::string db;
    std::string socket;
    std::string unit;
    std::string event;
    std::optional<int> exit_status;
    std::string signal;
    bool failed = false;
};

constexpr CommandHelp EMIT_HELP{
    "emit",
    "Record a start or stop reported by another init system (Upstart, runit, s6, ...). "
    "Exit 0 once stored, 1 when the daemon refuses it or does not answer, 2 for bad "
    "arguments, 3 when no daemon listens and the database is missing or not writable, 5 when "
    "a daemon holds the database but takes no events on the socket"};

[[noreturn]] void usage(const std::string& message) {
    throw core::Error(core::ExitCode::Usage, message);
}

ingest::EmitRequest requestOf(const EmitArgs& args, const core::Clock& clock) {
    ingest::EmitRequest request;
    if (auto why = ingest::checkUnitName(args.unit); !why.empty())
        usage("--unit '" + args.unit + "': " + why);
    if (auto why = ingest::checkNotSystemdUnit(args.unit); !why.empty())
        usage("--unit '" + args.unit + "': " + why);
    request.unit = args.unit;
    const auto event = ingest::parseEmitEvent(args.event);
    if (!event)
        usage("--event '" + args.event +
              "' is not one of starting, started, stopping, stopped, gave_up");
    request.event = *event;
    const bool ends =
        request.event == ingest::EmitEvent::Stopping || request.event == ingest::EmitEvent::Stopped;
    if (args.exit_status) {
        if (!ends) usage("--exit-status applies to --event stopping or stopped only");
        if (*args.exit_status < 0 || *args.exit_status > 255)
            usage("--exit-status " + std::to_string(*args.exit_status) +
                  " is out of range; an exit status is 0 to 255");
        request.exit_status = args.exit_status;
    }
    if (!args.signal.empty()) {
        if (!ends) usage("--signal applies to --event stopping or stopped only");
        request.signal = ingest::parseSignal(args.signal);
        if (!request.signal)
            usage("--signal '" + args.signal + "' is not a signal; use a number or a name (SEGV)");
    }
    if (args.failed) {
        if (!ends) usage("--failed applies to --event stopping or stopped only");
        request.failed = true;
    }
    request.ts_usec = clock.realtime();
    request.mono_usec = clock.monotonic();
    return request;
}

// No daemon listens: the rows go straight into the database, marked for the daemon to
// evaluate when it starts. Returns false, appending nothing, while a daemon that still takes
// events holds the database: it would not evaluate them until its next start.
bool appendDirectly(const std::string& db_path, const ingest::EmitRequest& request,
                    const std::string& why, store::LockHolder& holder) {
    // Shared: a daemon starting meanwhile waits for this append, and then evaluates it.
    const auto lock = store::WriterLock::tryShared(db_path, holder);
    if (!lock && !holder.stopping) return false;
    // An existing one only: a mistyped --db must not swallow the event in a new file.
    auto db = store::Database::open(db_path, store::OpenMode::ReadWriteExisting);
    const auto transitions = ingest::mapEmit(request, store::lastTransition(db, request.unit));
    store::appendUnevaluated(db, transitions);
    std::fprintf(stderr,
                 "cerberus: %s; appended %s to '%s' directly, evaluated when the daemon "
                 "starts\n",
                 why.c_str(), core::plural(transitions.size(), "transition").c_str(),
                 db_path.c_str());
    return true;
}

[[noreturn]] void failHeld(const std::string& db_path, const std::string& socket,
                           const store::LockHolder& holder) {
    const std::string who =
        holder.pid > 0 ? "cerberus PID " + std::to_string(holder.pid) : "a running cerberus";
    throw core::Error(core::ExitCode::Held,
                      "database '" + db_path + "' is held by " + who + ", which takes no events " +
                          (socket.empty() ? std::string("here (XDG_RUNTIME_DIR is not set)")
                                          : "on '" + socket + "'") +
                          "; pass --socket with that daemon's --emit-socket");
}

int runEmit(const EmitArgs& args) {
    const core::SystemClock clock;
    if (auto unknown = storeEvent(requestOf(args, clock), args.socket, args.db))
        throw core::Error(core::ExitCode::Failure, *unknown);
    return 0;
}

}  // namespace

void addEmitTargetOptions(CLI::App* cmd, std::string& socket, std::string& db) {
    cmd->add_option(
           "--socket", socket,
           "The daemon's emit socket (default: $CERBERUS_EMIT_SOCKET, else "
           "/run/cerberus/emit.sock for root, else $XDG_RUNTIME_DIR/cerberus/emit.sock, or "
           "/run/cerberus/emit.sock when no daemon of the user's own ever ran)")
        ->envname("CERBERUS_EMIT_SOCKET")
        ->type_name("PATH");
    addDbOption(cmd, db);
}

std::optional<std::string> storeEvent(const ingest::EmitRequest& request,
                                      const std::string& socket_path, const std::string& db_path) {
    const std::string socket = socket_path.empty() ? ingest::clientSocketPath() : socket_path;
    store::LockHolder holder;
    if (socket.empty()) {
        if (!appendDirectly(db_path, request, "no emit socket (XDG_RUNTIME_DIR is not set)",
                            holder))
            failHeld(db_path, socket, holder);
        return std::nullopt;
    }
    const core::SystemClock clock;
    const core::Usec give_up_at = clock.monotonic() + REPLY_TIMEOUT_USEC;
    auto sent = ingest::sendEvent(socket, request, REPLY_TIMEOUT_USEC);
    // A daemon that holds the database but does not listen yet is starting: its socket
    // comes within moments. One that never listens here listens elsewhere.
    while (sent.status == ingest::SendStatus::NoDaemon) {
        if (appendDirectly(db_path, request, "no daemon takes events (" + sent.message + ")",
                           holder))
            return std::nullopt;
        const core::Usec left = give_up_at - clock.monotonic();
        if (left <= 0) failHeld(db_path, socket, holder);
        usleep(static_cast<useconds_t>(std::min<core::Usec>(left, HELD_RETRY_USEC)));
        sent = ingest::sendEvent(socket, request,
                                 std::max<core::Usec>(give_up_at - clock.monotonic(), 1));
    }
    switch (sent.status) {
    case ingest::SendStatus::Stored: return std::nullopt;
    case ingest::SendStatus::NoDaemon: break;
    case ingest::SendStatus::Refused:
        throw core::Error(core::ExitCode::Failure,
                          "the daemon did not take the event: " + sent.message);
    case ingest::SendStatus::Unknown: return sent.message;
    case ingest::SendStatus::Failed: break;
    }
    throw core::Error(core::ExitCode::Failure, sent.message);
}

void addEmitCommand(CLI::App& app, Action& action) {
    const auto [cmd, args] = addCommand<EmitArgs>(app, EMIT_HELP);
    cmd->add_option("--unit", args->unit, "The job or service name")->required();
    cmd->add_option("--event", args->event,
                    "starting, started, stopping, stopped, or gave_up (the init stopped "
                    "restarting it)")
        ->required();
    cmd->add_option("--exit-status", args->exit_status,
                    "How the process exited (0-255); stopping/stopped only. Non-zero is a crash");
    cmd->add_option("--signal", args->signal,
                    "The signal that killed the process (number or name, e.g. SEGV); a crash");
    cmd->add_flag("--failed", args->failed,
                  "The process ended abnormally but the init does not say how; a crash");
    addEmitTargetOptions(cmd, args->socket, args->db);
    cmd->footer(
        "When no daemon listens on the socket, the transitions are appended to --db directly "
        "and the daemon evaluates them when it starts.");
    setAction(cmd, action, args, runEmit);
}

}  // namespace cerberus::cli
