#pragma once

// Internals shared by the store's .cpp files; nothing outside src/store/ includes this.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/store.hpp"

namespace cerberus::store::detail {

// Generated from schema/sql/ by tools/embed_sql.py (migrations.cpp in the build dir).
struct Migration {
    int version;
    std::string_view name;
    std::string_view sql;
};
const std::vector<Migration>& migrations();

// Owns one prepared statement.
class Statement {
public:
    Statement(sqlite3* db, std::string_view sql);  // throws core::Error(Database)
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&& other) noexcept;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();
    sqlite3_stmt* get() const { return stmt_; }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

struct Finalize {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
// For the few statements whose failure the caller words itself (Statement throws).
using StatementPtr = std::unique_ptr<sqlite3_stmt, Finalize>;

inline int prepare(sqlite3* db, std::string_view sql, StatementPtr& out) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    out.reset(raw);
    return rc;
}

// Binds parameters 1, 2, ... in order. A failed bind is kept (the first one wins) and the
// rest are skipped, so callers check rc() once before stepping.
class Binder {
public:
    explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

    Binder& text(std::string_view value) {
        if (rc_ == SQLITE_OK)
            rc_ = sqlite3_bind_text64(stmt_, index_, value.data(), value.size(), SQLITE_TRANSIENT,
                                      SQLITE_UTF8);
        ++index_;
        return *this;
    }
    Binder& int64(std::int64_t value) {
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, index_, value);
        ++index_;
        return *this;
    }
    template <typename T>
    Binder& optionalInt(const std::optional<T>& value) {
        if (value) return int64(static_cast<std::int64_t>(*value));
        if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_null(stmt_, index_);
        ++index_;
        return *this;
    }
    int rc() const { return rc_; }

private:
    sqlite3_stmt* stmt_;
    int index_ = 1;
    int rc_ = SQLITE_OK;
};

inline std::string columnText(sqlite3_stmt* stmt, int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
    if (text == nullptr) return {};
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
}

inline std::optional<std::int64_t> columnOptionalInt(sqlite3_stmt* stmt, int column) {
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(stmt, column);
}

// Resets a statement and drops its bindings so it holds no read transaction open.
inline void rewind(sqlite3_stmt* stmt) {
    // reset() repeats the last step's error, which the caller has already handled.
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

// The database's directory must be there and writable: WAL keeps two files (and the
// writer lock one) next to the database. Throws core::Error(Database), naming the fix.
void checkDirectory(const std::string& path, bool exists);

// One sentence for the operator: what could not be done, in which file, and why.
[[noreturn]] void fail(const Database& db, const std::string& what);

// Steps a write statement once and rewinds it; SQLITE_OK when it completed.
int run(sqlite3_stmt* stmt);

// Prepares a write statement, lets `bind` fill its parameters and runs it once; returns the
// first failing sqlite code, else SQLITE_OK.
template <typename Bind>
int runOnce(sqlite3* db, std::string_view sql, Bind&& bind) {
    StatementPtr stmt;
    if (const int rc = prepare(db, sql, stmt); rc != SQLITE_OK) return rc;
    Binder binder(stmt.get());
    std::forward<Bind>(bind)(binder);
    if (binder.rc() != SQLITE_OK) return binder.rc();
    return run(stmt.get());
}

// Applies one alert change inside the caller's transaction; returns the sqlite code.
int writeAlert(sqlite3* db, const AlertWrite& change);
// Writes a delivery's outcome to its outbox row inside the caller's transaction.
int writeOutboxUpdate(sqlite3* db, const OutboxUpdate& update);

}  // namespace cerberus::store::detail
