#pragma once

// Events fed by other init systems through `cerberus emit` (docs/OTHER-INITS.md): the
// request and reply lines, their mapping to transitions, the daemon's Unix socket and the
// client that talks to it.

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/fd.hpp"
#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::ingest {

// What the init reports: Upstart's job events, runit's finish script, supervisord's states.
// GaveUp: the init stopped restarting the unit (supervisord's FATAL).
enum class EmitEvent : std::uint8_t { Starting, Started, Stopping, Stopped, GaveUp };

std::string_view toString(EmitEvent event);
std::optional<EmitEvent> parseEmitEvent(std::string_view text);

constexpr std::size_t UNIT_NAME_MAX = 256;
constexpr std::size_t EMIT_REQUEST_MAX = 4096;  // bytes of one request line, '\n' included

struct EmitRequest {
    std::string unit;
    EmitEvent event = EmitEvent::Started;
    std::optional<int> exit_status;  // 0..255; stopping/stopped only
    std::optional<int> signal;       // the signal that ended the process; stopping/stopped only
    bool failed = false;             // ended abnormally, status unknown; stopping/stopped only
    core::Source source = core::Source::Emit;  // Emit, or Supervisor from the listener
    core::Usec ts_usec = 0;                    // the client's wall clock
    core::Usec mono_usec = 0;                  // the client's CLOCK_MONOTONIC
};

// Empty when `unit` is a usable name (1..UNIT_NAME_MAX bytes of printable ASCII, no space),
// else the reason.
std::string checkUnitName(std::string_view unit);

// Empty unless `unit` is named like a systemd unit (ends in .service, .socket, .timer, ...),
// else the reason. The daemon follows systemd's units itself: an emitted event for one
// would be a second, unverified account of them (a forged crash loop for dbus.service), so
// the daemon, the emit client and the supervisord listener refuse such names.
std::string checkNotSystemdUnit(std::string_view unit);

// A signal number from "11", "SEGV" or "SIGSEGV"; nullopt when there is no such signal.
std::optional<int> parseSignal(std::string_view text);

// One JSON object, no newline: {"unit", "event", "exit_status"?, "signal"?, "failed"?,
// "source"?, "ts_usec", "mono_usec"}.
std::string encodeRequest(const EmitRequest& request);

struct ParsedRequest {
    std::optional<EmitRequest> request;
    std::string error;  // one sentence naming the field, when !request
};

// How far a request's times may be from the receiver's clocks.
constexpr core::Usec EMIT_CLOCK_PAST_USEC = 24 * 3600 * core::USEC_PER_SEC;
constexpr core::Usec EMIT_CLOCK_AHEAD_USEC = 60 * core::USEC_PER_SEC;

// Parses one request line (without its newline). Missing times are taken from `now_usec`
// and `now_mono`, the receiver's clocks; given ones must lie within EMIT_CLOCK_PAST_USEC
// before and EMIT_CLOCK_AHEAD_USEC after them.
ParsedRequest parseRequest(std::string_view line, core::Usec now_usec, core::Usec now_mono);

struct Reply {
    bool ok = false;
    std::size_t stored = 0;  // transitions committed for the request (ok)
    std::string error;       // why not (!ok)
    // !ok: the daemon is stopping and has stored nothing of the request; the client may
    // append it to the database itself.
    bool stopping = false;
};

std::string encodeReply(const Reply& reply);  // one JSON object, no newline
std::optional<Reply> parseReply(std::string_view line);

// The transitions one event stands for, given the unit's last stored transition:
// - starting stores nothing: the run has not begun until the init says started;
// - started is a start, preceded by a restart when the last run crashed (a respawn);
// - stopping/stopped end the run: a crash with a non-zero status, a signal or `failed`,
//   else a stop;
// - gave_up is a give_up;
// - a run end right after another run end means the init respawned the unit unseen (an
//   Upstart respawn emits stopping but no starting): a restart, stamped at the previous
//   end, comes first;
// - stopped right after the stopping of the same run stores nothing more.
std::vector<core::Transition> mapEmit(const EmitRequest& request,
                                      const std::optional<core::Transition>& last);

// Where the daemon listens by default. root: /run/cerberus/emit.sock; else
// $XDG_RUNTIME_DIR/cerberus/emit.sock; empty when XDG_RUNTIME_DIR is not set.
std::string defaultSocketPath();

// Where a client sends by default: defaultSocketPath(), except that a user other than root
// whose own daemon never ran (no $XDG_RUNTIME_DIR/cerberus) sends to the system daemon's
// /run/cerberus/emit.sock when that exists (a member of its --emit-group).
std::string clientSocketPath();

// supervisord's event listener protocol: one event's header line (without '\n') says its
// name and payload length; nullopt when the header is malformed.
struct SupervisorHeader {
    std::string event_name;
    std::size_t length = 0;
};
std::optional<SupervisorHeader> parseSupervisorHeader(std::string_view line);

// The emit request a PROCESS_STATE_* event stands for (unit "supervisor:NAME", or
// "supervisor:GROUP:NAME" when the group has another name), or nullopt for events that
// store nothing. STARTING -> starting, RUNNING -> started, EXITED -> stopped (failed unless
// expected), BACKOFF -> stopped failed (it died before startsecs), STOPPED -> stopped,
// FATAL -> gave_up. The unit name is not checked here: the caller says why it refuses one
// (checkUnitName, checkNotSystemdUnit).
std::optional<EmitRequest> supervisorRequest(std::string_view event_name, std::string_view payload);

// The id of group `name`; nullopt when the host has no such group.
std::optional<gid_t> groupId(const std::string& name);

struct EmitSocketOptions {
    std::string path;
    std::optional<gid_t> group;  // may feed events besides root and the daemon's own user
    std::string group_name;      // for messages
};

// The daemon's side: a listening SOCK_STREAM socket and its connections, all non-blocking,
// behind one epoll fd for the daemon's loop. One request line per connection; its reply
// waits until the transitions are committed (committed()).
class EmitServer {
public:
    using Deliver = std::function<void(core::Transition)>;
    using LastTransition = std::function<std::optional<core::Transition>(const std::string&)>;
    using Log = std::function<void(const std::string&)>;

    // Binds the socket (0660 with the group, else 0600), replacing a stale one. Throws
    // core::Error(Failure) naming the path when it cannot, or when another process listens.
    EmitServer(EmitSocketOptions options, Deliver deliver, LastTransition last, Log log);
    ~EmitServer();
    EmitServer(const EmitServer&) = delete;
    EmitServer& operator=(const EmitServer&) = delete;

    int fd() const { return epoll_.get(); }  // readable when process() has work
    const std::string& path() const { return options_.path; }
    void process(core::Usec now_usec, core::Usec now_mono);
    // Everything delivered so far is stored: answers the requests waiting for it.
    void committed();
    // No new events: closes and removes the socket, and tells the clients whose requests
    // were not taken yet (Reply::stopping) so they append them to the database. Requests
    // waiting for their commit are answered by committed(), or as not stored when the
    // server is destroyed first.
    void stopListening();
    std::optional<core::Usec> deadline() const;  // monotonic: the next timeout or retry

private:
    struct Connection {
        core::UniqueFd fd;
        std::string buffer;
        core::Usec deadline_mono = 0;
        std::size_t stored = 0;
        bool awaiting_commit = false;
    };

    void accept(core::Usec now_mono);
    std::string refusal(int fd);
    void read(Connection& connection, core::Usec now_usec, core::Usec now_mono);
    void handle(Connection& connection, std::string_view line, core::Usec now_usec,
                core::Usec now_mono);
    void finish(int fd, const Reply& reply);
    // Answers and closes each connection `reply_for` gives a reply for.
    void finishEach(const std::function<std::optional<Reply>(const Connection&)>& reply_for);
    void expire(core::Usec now_mono);
    bool watchListening();

    EmitSocketOptions options_;
    Deliver deliver_;
    LastTransition last_;
    Log log_;
    core::UniqueFd listen_;
    core::UniqueFd epoll_;
    ino_t inode_ = 0;
    std::map<int, Connection> connections_;
    std::map<std::string, core::Transition> last_seen_;  // delivered, maybe not yet stored
    std::set<uid_t> refused_logged_;
    std::set<std::string> refused_units_logged_;     // systemd unit names, logged once each
    std::optional<core::Usec> accept_paused_until_;  // monotonic; out of file descriptors
    bool accept_failure_logged_ = false;
};

// NoDaemon: nothing of the event is stored (no socket, connection refused or reset, or
// the daemon is stopping). Unknown: no answer in time; the daemon may still store it.
enum class SendStatus : std::uint8_t { Stored, NoDaemon, Refused, Unknown, Failed };

struct SendResult {
    SendStatus status = SendStatus::Failed;
    std::size_t stored = 0;
    std::string message;  // why not stored
};

// Sends one request and waits up to `timeout_usec` for the connection and for its reply.
SendResult sendEvent(const std::string& path, const EmitRequest& request, core::Usec timeout_usec);

}  // namespace cerberus::ingest
