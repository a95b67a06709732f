#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

namespace {

constexpr int BUSY_TIMEOUT_MSEC = 5000;

[[noreturn]] void fail(const std::string& message) {
    throw core::Error(core::ExitCode::Database, message);
}

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string directoryOf(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string sqliteMessage(sqlite3* db) {
    return db != nullptr ? sqlite3_errmsg(db) : "out of memory";
}

struct VersionRead {
    std::optional<int> version;
    int rc = SQLITE_OK;
    std::string message;
};

// Reads PRAGMA user_version without throwing: the caller words the failure.
VersionRead readUserVersion(sqlite3* db) {
    VersionRead read;
    detail::Statement stmt;
    read.rc = detail::prepare(db, "PRAGMA user_version", stmt);
    if (read.rc == SQLITE_OK) {
        read.rc = sqlite3_step(stmt.get());
        if (read.rc == SQLITE_ROW) read.version = sqlite3_column_int(stmt.get(), 0);
    }
    if (!read.version) read.message = sqliteMessage(db);
    return read;
}

[[noreturn]] void failNewer(const std::string& path, int version) {
    fail("database " + quoted(path) + " has schema version " + std::to_string(version) +
         " but this cerberus knows up to " + std::to_string(latestSchemaVersion()) +
         "; upgrade cerberus");
}

// Refuses what this build cannot or must not touch: not a database, another program's
// database, or a schema from a newer cerberus. Reads only.
int checkSchema(sqlite3* db, const std::string& path) {
    const auto read = readUserVersion(db);
    if (!read.version) {
        if (read.rc == SQLITE_NOTADB)
            fail(quoted(path) + " is not a cerberus database (" + read.message +
                 "); pass --db with another file");
        fail("cannot read database " + quoted(path) + ": " + read.message +
             "; check the file or pass --db");
    }
    const int version = *read.version;
    if (version > latestSchemaVersion()) failNewer(path, version);
    if (version == 0) {
        const auto count = detail::prepareOrThrow(db, "SELECT count(*) FROM sqlite_master");
        if (sqlite3_step(count.get()) != SQLITE_ROW)
            fail("cannot read database " + quoted(path) + ": " + sqliteMessage(db) +
                 "; check the file or pass --db");
        // Migrating would add our tables to another program's database.
        if (sqlite3_column_int64(count.get(), 0) > 0)
            fail(quoted(path) +
                 " is not a cerberus database (it has tables but no cerberus schema version); "
                 "pass --db with another file");
    }
    return version;
}

void exec(sqlite3* db, const std::string& path, const char* sql, const char* what) {
    char* message = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
        std::string text = message != nullptr ? message : sqliteMessage(db);
        sqlite3_free(message);
        fail("cannot " + std::string(what) + " on database " + quoted(path) + ": " + text +
             "; check the file and its directory or pass --db");
    }
}

void switchToWal(sqlite3* db, const std::string& path) {
    detail::Statement stmt;
    int rc = detail::prepare(db, "PRAGMA journal_mode=WAL", stmt);
    std::string mode;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt.get());
        if (rc == SQLITE_ROW) mode = detail::Row(stmt.get()).text();
    }
    if (rc != SQLITE_ROW)
        fail("cannot switch database " + quoted(path) + " to WAL mode: " + sqliteMessage(db) +
             "; check the file and its directory or pass --db");
    // SQLite answers with the mode it kept when WAL is impossible (e.g. no shared memory).
    if (mode != "wal")
        fail("cannot switch database " + quoted(path) + " to WAL mode (it stays in " +
             quoted(mode) + " mode); put it on a local file system or pass --db");
}

void migrate(sqlite3* db, const std::string& path, int current) {
    for (const auto& migration : detail::migrations()) {
        if (migration.version <= current) continue;
        const std::string version = std::to_string(migration.version);
        exec(db, path, "BEGIN IMMEDIATE", "start a migration");
        // Another process may have migrated between our check and this write lock.
        const auto read = readUserVersion(db);
        if (!read.version || *read.version >= migration.version) {
            // Nothing was written; a failed ROLLBACK surfaces at the next BEGIN.
            (void)sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
            if (!read.version)
                fail("cannot read the schema version of database " + quoted(path) + ": " +
                     read.message + "; check the file or pass --db");
            if (*read.version > latestSchemaVersion()) failNewer(path, *read.version);
            current = *read.version;
            continue;
        }
        std::string sql(migration.sql);
        sql += "\nPRAGMA user_version = " + version + ";";
        char* error = nullptr;
        if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", nullptr, nullptr, &error) != SQLITE_OK) {
            const std::string message = error != nullptr ? error : sqliteMessage(db);
            sqlite3_free(error);
            // The throw closes the connection, which rolls back whatever ROLLBACK could not.
            (void)sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
            fail("cannot migrate database " + quoted(path) + " to schema " + version + " (" +
                 std::string(migration.name) + "): " + message +
                 "; nothing was changed, check free space and permissions");
        }
        current = migration.version;
    }
}

// The directory must be there and writable: WAL keeps two files next to the database.
void checkDirectory(const std::string& path, bool exists) {
    const std::string dir = directoryOf(path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        if (errno == ENOENT)
            fail("cannot create database " + quoted(path) + ": directory " + quoted(dir) +
                 " does not exist; create it or pass --db");
        fail("cannot create database " + quoted(path) + ": cannot reach directory " + quoted(dir) +
             " (" + std::strerror(errno) + "); fix its permissions or pass --db");
    }
    if (!S_ISDIR(st.st_mode))
        fail("cannot create database " + quoted(path) + ": " + quoted(dir) +
             " is not a directory; pass --db");
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
        if (errno == EROFS)
            fail("cannot " + std::string(exists ? "write to" : "create") + " database " +
                 quoted(path) + ": directory " + quoted(dir) +
                 " is on a read-only file system; pass --db with a writable place");
        if (exists)
            fail("cannot open database " + quoted(path) + " for writing: directory " + quoted(dir) +
                 " is not writable; fix its permissions or pass --db");
        fail("cannot create database " + quoted(path) + ": directory " + quoted(dir) +
             " is not writable; fix its permissions or pass --db");
    }
}

// Creates the file 0600 (or opens it) before SQLite sees it, with a sentence per cause.
void createFile(const std::string& path) {
    checkDirectory(path, ::access(path.c_str(), F_OK) == 0);
    core::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd) {
        // The umask may have taken bits away; the history is private to its owner.
        if (::fchmod(fd.get(), 0600) != 0)
            fail("cannot set mode 0600 on new database " + quoted(path) + ": " +
                 std::strerror(errno) + "; check the file system or pass --db");
        return;
    }
    if (errno != EEXIST)
        fail("cannot create database " + quoted(path) + ": " + std::strerror(errno) +
             "; check the path or pass --db");
    fd.reset(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd) {
        if (errno == EACCES)
            fail("cannot open database " + quoted(path) +
                 " for writing: permission denied; make it writable for this user or pass --db");
        // Even root gets EPERM for a file marked immutable (chattr +i).
        if (errno == EPERM)
            fail("cannot open database " + quoted(path) +
                 " for writing: operation not permitted; if 'lsattr' shows it immutable, "
                 "'chattr -i' it, or pass --db");
        if (errno == EROFS)
            fail("cannot open database " + quoted(path) +
                 " for writing: the file system is read-only; pass --db");
        fail("cannot open database " + quoted(path) + ": " + std::strerror(errno) +
             "; check the path or pass --db");
    }
}

}  // namespace

void detail::checkDirectory(const std::string& path, bool exists) {
    store::checkDirectory(path, exists);
}

int latestSchemaVersion() {
    int latest = 0;
    for (const auto& migration : detail::migrations())
        if (migration.version > latest) latest = migration.version;
    return latest;
}

Database Database::open(const std::string& path, OpenMode mode) {
    int flags = SQLITE_OPEN_NOMUTEX;
    if (mode == OpenMode::ReadWrite) {
        createFile(path);
        flags |= SQLITE_OPEN_READWRITE;
    } else {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                fail("no database at " + quoted(path) + "; run 'cerberus run' first or pass --db");
            fail("cannot open database " + quoted(path) + ": " + std::strerror(errno) +
                 "; fix its permissions or pass --db");
        }
        if (!S_ISREG(st.st_mode))
            fail(quoted(path) + " is not a cerberus database (not a regular file); pass --db");
        if (mode == OpenMode::ReadWriteExisting) {
            checkDirectory(path, true);
            // SQLite would quietly open it read-only and fail at the first write.
            if (::access(path.c_str(), W_OK) != 0)
                fail("cannot open database " + quoted(path) + " for writing: " +
                     std::strerror(errno) + "; fix its permissions or pass --db");
        }
        flags |= mode == OpenMode::ReadOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    }

    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    // Owned from here on, also when opening failed (SQLite still hands out a handle).
    Database db(raw, path);
    if (rc != SQLITE_OK)
        fail("cannot open database " + quoted(path) + ": " + sqliteMessage(raw) +
             "; check the file or pass --db");
    if (sqlite3_busy_timeout(raw, BUSY_TIMEOUT_MSEC) != SQLITE_OK)
        fail("cannot set a busy timeout on database " + quoted(path) + ": " + sqliteMessage(raw));

    db.rememberFile();
    const int version = checkSchema(raw, path);
    if (mode != OpenMode::ReadWrite && version == 0)
        fail("database " + quoted(path) + " is empty; run 'cerberus run' first or pass --db");
    if (mode == OpenMode::ReadOnly) {
        if (version < latestSchemaVersion())
            fail("database " + quoted(path) + " has schema version " + std::to_string(version) +
                 " but this cerberus reads " + std::to_string(latestSchemaVersion()) +
                 "; run 'cerberus run' once to migrate it");
        return db;
    }

    switchToWal(raw, path);
    // NORMAL is durable in WAL mode except for the last commits on power loss.
    exec(raw, path, "PRAGMA synchronous=NORMAL", "set synchronous=NORMAL");
    exec(raw, path, "PRAGMA foreign_keys=ON", "enable foreign keys");
    migrate(raw, path, version);
    return db;
}

Database::Database(Database&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      device_(other.device_),
      inode_(other.inode_),
      generation_(other.generation_) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        // close_v2 defers the close until every statement is finalized: it always succeeds.
        if (db_ != nullptr) (void)sqlite3_close_v2(db_);
        db_ = std::exchange(other.db_, nullptr);
        path_ = std::move(other.path_);
        device_ = other.device_;
        inode_ = other.inode_;
        generation_ = other.generation_;
    }
    return *this;
}

// Right after SQLite opened the path: the file it holds is the one there now.
void Database::rememberFile() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0)
        fail("cannot open database " + quoted(path_) + ": " + std::strerror(errno) +
             "; check the path or pass --db");
    device_ = st.st_dev;
    inode_ = st.st_ino;
}

FileState Database::checkFile() const {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? FileState::Deleted : FileState::Unknown;
    if (st.st_dev != device_ || st.st_ino != inode_) return FileState::Replaced;
    return FileState::Same;
}

Result<Done> Database::restore() {
    const std::string copy_path = path_ + ".restoring";
    const auto failure = [&](const std::string& why) {
        return Failure{"cannot restore database " + quoted(path_) + ": " + why};
    };
    // A copy from an earlier attempt that failed half-way.
    if (::unlink(copy_path.c_str()) != 0 && errno != ENOENT)
        return failure("cannot remove " + quoted(copy_path) + ": " + std::strerror(errno));
    try {
        createFile(copy_path);
    } catch (const core::Error& e) {
        return Failure{e.what()};
    }
    {
        sqlite3* raw = nullptr;
        const int rc = sqlite3_open_v2(copy_path.c_str(), &raw,
                                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
        Database copy(raw, copy_path);
        if (rc != SQLITE_OK) {
            (void)::unlink(copy_path.c_str());  // best effort; the next attempt removes it
            return failure(sqliteMessage(raw));
        }
        sqlite3_backup* backup = sqlite3_backup_init(raw, "main", db_, "main");
        int step = backup != nullptr ? sqlite3_backup_step(backup, -1) : SQLITE_ERROR;
        // finish() reports the step's error again; the step's code is the one to keep.
        if (backup != nullptr && sqlite3_backup_finish(backup) != SQLITE_OK && step == SQLITE_DONE)
            step = SQLITE_ERROR;
        if (step != SQLITE_DONE) {
            const std::string message = sqliteMessage(raw);
            (void)::unlink(copy_path.c_str());  // best effort; the next attempt removes it
            return failure("copying it failed: " + message);
        }
    }
    // The WAL and shared-memory files left at the path belong to the deleted file: a new
    // database there would read them as its own. This connection keeps its open handles.
    for (const char* suffix : {"-wal", "-shm"}) {
        const std::string stale = path_ + suffix;
        if (::unlink(stale.c_str()) != 0 && errno != ENOENT) {
            const int error = errno;
            (void)::unlink(copy_path.c_str());  // best effort; the next attempt removes it
            return failure("cannot remove " + quoted(stale) + ": " + std::strerror(error));
        }
    }
    // RENAME_NOREPLACE: a file someone put there meanwhile is theirs, not overwritten.
    if (::renameat2(AT_FDCWD, copy_path.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) != 0) {
        const int error = errno;
        (void)::unlink(copy_path.c_str());  // best effort; the next attempt removes it
        return failure(std::strerror(error));
    }
    return reopen();
}

// The old connection closes once the caller's statements on it are finalized; its file
// has moved, so SQLite neither checkpoints into it nor deletes anything at the path.
Result<Done> Database::reopen() {
    const auto generation = generation_;
    try {
        *this = open(path_, OpenMode::ReadWrite);
    } catch (const core::Error& e) {
        return Failure{e.what()};
    }
    generation_ = generation + 1;
    return Done{};
}

Database::~Database() {
    // close_v2 defers the close until every statement is finalized; nothing to report here.
    if (db_ != nullptr) (void)sqlite3_close_v2(db_);
}

int Database::schemaVersion() const {
    const auto read = readUserVersion(db_);
    if (!read.version)
        fail("cannot read the schema version of database " + quoted(path_) + ": " + read.message +
             "; check the file or pass --db");
    return *read.version;
}

namespace detail {

Result<Statement> tryPrepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    Statement statement(raw);
    if (rc == SQLITE_OK) return statement;
    const char* file = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
    return Failure{"cannot prepare a statement on database " + quoted(file != nullptr ? file : "") +
                   ": " + sqliteMessage(db) +
                   "; the file may come from another program, pass --db"};
}

Statement prepareOrThrow(sqlite3* db, std::string_view sql) {
    return tryPrepare(db, sql).orThrow();
}

}  // namespace detail

}  // namespace cerberus::store
