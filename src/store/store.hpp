#pragma once

// The store: cerberus's SQLite history. One lean header; the rest stays in src/store/.
// sqlite3's own header stays in there too: its handles are only named here.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/time.hpp"
#include "core/transition.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace cerberus::store {

namespace detail {
struct WriterStatements;
}  // namespace detail

// An expected failure at run time (a locked or full database, a deleted file): one sentence
// for the caller to log once, with its context.
struct Failure {
    std::string message;
};

// A value with nothing in it, for a Result that only says whether it worked.
struct Done {};

// What the store's calls the daemon makes at run time return (a flush, a prune, a restore,
// the reads of the outbox, the silences and a reload's replay): the value, or the Failure.
// Opening a database and the reads only start-up and the cli make throw core::Error instead.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : outcome_(std::move(value)) {}            // NOLINT: converts on return
    Result(Failure failure) : outcome_(std::move(failure)) {}  // NOLINT: converts on return
    bool ok() const { return std::holds_alternative<T>(outcome_); }
    const T& value() const { return std::get<T>(outcome_); }
    T& value() { return std::get<T>(outcome_); }
    const std::string& error() const { return std::get<Failure>(outcome_).message; }
    // For a caller whose failure ends the program (the cli): the value, or
    // core::Error(Database) with the Failure's sentence.
    T orThrow() && {
        if (!ok()) throw core::Error(core::ExitCode::Database, error());
        return std::get<T>(std::move(outcome_));
    }

private:
    std::variant<T, Failure> outcome_;
};

// The newest schema this build knows (the highest schema/sql/NNN_*.sql).
int latestSchemaVersion();

// ReadWriteExisting: read-write, but the database must exist and hold a schema already.
enum class OpenMode { ReadWrite, ReadWriteExisting, ReadOnly };

// What is at the database's path now, against the file the connection opened.
enum class FileState : std::uint8_t {
    Same,      // the file it opened
    Deleted,   // nothing: the open connection holds the only copy
    Replaced,  // another file (another device or inode)
    Unknown,   // the path cannot be checked (stat failed for another reason)
};

// Owns one sqlite3 connection. Opening read-write creates the file 0600 (never its
// directory) unless it exists, switches to WAL and migrates to latestSchemaVersion(). Failures
// throw core::Error(ExitCode::Database) with one sentence naming the file and the fix; a file from
// a newer schema is refused before anything is written.
class Database {
public:
    static Database open(const std::string& path, OpenMode mode);

    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    ~Database();

    sqlite3* handle() const { return db_; }
    const std::string& path() const { return path_; }
    int schemaVersion() const;

    // One stat() of the path, compared with the (device, inode) the connection opened.
    FileState checkFile() const;
    // After FileState::Deleted: copies what the connection holds to a new file at path()
    // (SQLite's online backup), then reopens on it. handle() changes and generation() grows:
    // statements prepared on the old handle must be prepared again. A Failure when the copy
    // cannot be made; the old connection stays usable.
    Result<Done> restore();
    // Grows by one each time handle() is replaced.
    std::uint64_t generation() const { return generation_; }

private:
    Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
    void rememberFile();
    Result<Done> reopen();
    sqlite3* db_ = nullptr;
    std::string path_;
    std::uint64_t device_ = 0;
    std::uint64_t inode_ = 0;
    std::uint64_t generation_ = 0;
};

// Who holds a database's writer lock, as its lock file says.
struct LockHolder {
    long pid = 0;           // 0: the file names nobody (being written, or damaged)
    bool stopping = false;  // the holder has stopped taking events and is draining
};

// One writer per database: `cerberus run` holds an exclusive flock() on FILE.lock next to
// the database (0600, its PID as text) from before its first write to its exit. The
// kernel drops the lock with the process, so a killed daemon leaves no stale lock behind.
// `cerberus emit` appends beside no daemon under a shared lock on the same file.
class WriterLock {
public:
    // Exclusive. A daemon holding it: core::Error(Held) naming its PID. Appends of
    // `cerberus emit` (milliseconds) are waited for, at most 5 s. The lock file cannot be
    // created: core::Error(Database).
    static WriterLock acquire(const std::string& db_path);
    // Shared, for an append while no daemon runs; nullopt (and `holder_out` filled in) when
    // a daemon holds the database. No lock file yet: no daemon ever held it, an empty lock.
    static std::optional<WriterLock> tryShared(const std::string& db_path, LockHolder& holder_out);
    static std::string pathOf(const std::string& db_path) { return db_path + ".lock"; }

    // Says in the lock file that this daemon no longer takes events: `cerberus emit` may
    // then append beside it (the next start evaluates those rows).
    void markStopping();

private:
    explicit WriterLock(core::UniqueFd fd) : fd_(std::move(fd)) {}
    core::UniqueFd fd_;  // closing it releases the lock
};

// What one successful flush committed.
struct Flushed {
    std::size_t written = 0;        // transitions
    std::size_t notifications = 0;  // outbox rows
};

// One outbox row to write with its alert change: what to tell one receiver.
struct OutboxWrite {
    std::string receiver;
    std::string action;   // "trigger" or "resolve"
    std::string payload;  // the notification as JSON (notify::encode); never a secret
};

// One change of an alert (rules::AlertChange as the store sees it), written in the same
// transaction as the transitions that caused it.
struct AlertWrite {
    // Count: the firing alert counted another event (its count only; nothing is told).
    enum class Kind : std::uint8_t { Fire, Repeat, Resolve, Unsilence, Count };
    Kind kind = Kind::Fire;
    std::string rule;
    std::string unit;
    std::string host;
    std::string severity;
    std::int64_t count = 0;
    core::Usec started_usec = 0;
    core::Usec at_usec = 0;  // when it fired, repeated or resolved
    bool silenced = false;   // Fire: recorded, not told; Unsilence: the silence has ended
    std::vector<OutboxWrite> notifications;  // outbox rows, in the same transaction
};

// What became of one delivery attempt (notify::Dispatcher), written back to its row.
struct OutboxUpdate {
    std::int64_t id = 0;
    std::string status;  // "pending", "sent" or "failed"
    std::int64_t attempts = 0;
    core::Usec next_attempt_usec = 0;
    std::string last_error;
    std::optional<core::Usec> sent_usec;
};

// Batches transitions and unit snapshots and commits them in one transaction per flush()
// (the event loop flushes once it has drained its input). A failed flush (full disk,
// locked database) keeps everything queued for the next try; past max_queued transitions
// the oldest are dropped and counted.
class HistoryWriter {
public:
    explicit HistoryWriter(Database& db, std::size_t max_queued = 100000);
    HistoryWriter(HistoryWriter&& other) noexcept;
    HistoryWriter(const HistoryWriter&) = delete;
    HistoryWriter& operator=(const HistoryWriter&) = delete;
    ~HistoryWriter();

    void add(core::Transition transition);
    // Persists the unit's latest snapshot (table `units`) in the next flush.
    void putUnit(const core::UnitSnapshot& snapshot);
    // Records which systemd manager the snapshots belong to (table `manager`), next flush.
    void putManager(std::string identity);
    // From now on every flush also records that the daemon was watching then
    // (manager.updated_usec), so that a later start knows since when nobody watched.
    void keepHeartbeat() { heartbeat_ = true; }
    // Makes the next flush happen even with nothing else to write, for the heartbeat.
    void beat() { beat_ = heartbeat_; }
    // Records an alert change in the next flush, after that flush's transitions.
    void addAlert(AlertWrite change);
    // Records the outcome of a delivery in the next flush.
    void updateNotification(OutboxUpdate update);
    // Clears an unevaluated transition's mark in the next flush, with the alert changes its
    // evaluation caused.
    void markEvaluated(std::int64_t transition_id);

    Result<Flushed> flush();
    std::size_t pending() const {
        return queue_.size() + units_.size() + alerts_.size() + updates_.size() +
               evaluated_.size() + (manager_ ? 1 : 0) + (beat_ ? 1 : 0);
    }
    std::uint64_t dropped() const { return dropped_; }

private:
    Database& db_;
    std::size_t max_queued_;
    std::deque<core::Transition> queue_;
    std::map<std::string, core::UnitSnapshot> units_;
    std::vector<AlertWrite> alerts_;
    std::vector<OutboxUpdate> updates_;
    std::vector<std::int64_t> evaluated_;
    std::optional<std::string> manager_;
    bool heartbeat_ = false;
    bool beat_ = false;
    std::uint64_t dropped_ = 0;
    // Prepared once per connection (a restored database is a new one): a flush parses no
    // SQL of its own.
    void prepare();
    std::uint64_t generation_ = 0;
    std::unique_ptr<detail::WriterStatements> statements_;
};

// Deletes up to `batch` transitions older than `before_usec`; returns how many it deleted.
Result<std::int64_t> pruneTransitions(Database& db, core::Usec before_usec, int batch = 2000);

// The persisted snapshots of every unit (for reconcile at start-up).
std::map<std::string, core::UnitSnapshot> loadUnits(Database& db);
std::optional<core::UnitSnapshot> loadUnit(Database& db, const std::string& unit);
// The identity of the manager the snapshots belong to; empty when none was recorded.
std::string loadManager(Database& db);
// When a daemon last recorded that it was watching (its last flush); nullopt: never.
std::optional<core::Usec> lastWatched(Database& db);

struct HistoryQuery {
    // Rows whose unit matches any of these sqlite GLOBs (none: every unit); an exact name
    // uses the index.
    std::vector<std::string> unit_globs;
    std::vector<core::Event> events;  // any of these; none: every event
    std::optional<core::Usec> since_usec;
    std::optional<core::Usec> until_usec;
    int limit = 100;  // the newest `limit` rows, returned oldest first
    // Following: instead, the oldest `limit` rows with an id in (after_id, through_id], in
    // stored order.
    std::optional<std::int64_t> after_id;
    std::optional<std::int64_t> through_id;
};

struct StoredTransition {
    std::int64_t id = 0;
    core::Transition transition;
};

std::vector<StoredTransition> queryHistory(Database& db, const HistoryQuery& query);

// The id of the newest stored transition; 0 when there is none.
std::int64_t lastTransitionId(Database& db);

// Changes when another connection commits to the database (PRAGMA data_version): a cheap
// test of whether there is anything new to read.
std::int64_t dataVersion(Database& db);

// Transitions in stored order with ts_usec in [since, until), for replaying them through the
// rules; `visit` returns false to stop early. `evaluated_only` leaves out the transitions
// still marked unevaluated (appendUnevaluated). The daemon's reload replays at run time:
// a history it cannot read is a Failure, and the rules in force stay.
Result<Done> tryForEachTransition(Database& db, std::optional<core::Usec> since_usec,
                                  std::optional<core::Usec> until_usec,
                                  const std::function<bool(const core::Transition&)>& visit,
                                  bool evaluated_only = false);
// The same for the cli: tryForEachTransition(...).orThrow().
void forEachTransition(Database& db, std::optional<core::Usec> since_usec,
                       std::optional<core::Usec> until_usec,
                       const std::function<bool(const core::Transition&)>& visit,
                       bool evaluated_only = false);

// The newest stored transition of `unit` (the exact name), if any.
std::optional<core::Transition> lastTransition(Database& db, const std::string& unit);

// Appends transitions in one transaction and marks each unevaluated: what `cerberus emit`
// stores when no daemon listens. The daemon evaluates them when it starts.
void appendUnevaluated(Database& db, const std::vector<core::Transition>& transitions);

// The transitions still marked unevaluated, in stored order.
std::vector<StoredTransition> loadUnevaluated(Database& db);

struct StoredAlert {
    std::int64_t id = 0;
    std::string rule;
    std::string unit;
    std::string host;
    std::string dedup_key;
    std::string state;  // firing, resolved
    std::string severity;
    std::int64_t count = 0;
    core::Usec started_usec = 0;
    std::optional<core::Usec> resolved_usec;
    std::optional<core::Usec> last_notified_usec;
    bool silenced = false;
};

// Alerts, newest first; `state` "firing", "resolved" or empty for all. A Failure when they
// cannot be read (the daemon's reload).
Result<std::vector<StoredAlert>> tryQueryAlerts(Database& db, const std::string& state,
                                                int limit = 1000);
// The same for the cli: tryQueryAlerts(...).orThrow().
std::vector<StoredAlert> queryAlerts(Database& db, const std::string& state, int limit = 1000);

// An outbox row still to deliver.
struct PendingNotification {
    std::int64_t id = 0;
    std::int64_t alert_id = 0;
    std::string receiver;
    std::string action;
    std::string payload;
    std::int64_t attempts = 0;
    core::Usec next_attempt_usec = 0;
    core::Usec created_usec = 0;
};

// Pending outbox rows with an id above `after_id`, oldest first.
Result<std::vector<PendingNotification>> loadPendingNotifications(Database& db,
                                                                  std::int64_t after_id = 0);

// For every alert still firing and told: the last trigger row per receiver (what an
// Alertmanager must keep hearing about). Rows are PendingNotification shaped.
std::vector<PendingNotification> firingTriggers(Database& db);

// Outbox rows by status ("pending", "sent", "failed").
Result<std::map<std::string, std::int64_t>> countNotifications(Database& db);

struct Silence {
    std::int64_t id = 0;
    std::string unit_glob;
    std::string rule;  // empty: every rule
    core::Usec starts_usec = 0;
    core::Usec ends_usec = 0;
    std::string comment;
};

std::int64_t addSilence(Database& db, const Silence& silence);
// Active at `now_usec` (or all, newest first, when `active_only` is false).
Result<std::vector<Silence>> listSilences(Database& db, bool active_only, core::Usec now_usec);
// Ends an active silence now; false when there is no active silence with that id.
bool expireSilence(Database& db, std::int64_t id, core::Usec now_usec);

}  // namespace cerberus::store
