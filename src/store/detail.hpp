#pragma once

// Internals shared by the store's .cpp files; nothing outside src/store/ includes this.

#include <sqlite3.h>

#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
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

struct Finalize {
    // finalize() repeats the last step's error, which the caller has already handled.
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
// Owns one prepared statement.
using Statement = std::unique_ptr<sqlite3_stmt, Finalize>;

// For the few statements whose failure the caller words itself: sqlite's code.
inline int prepare(sqlite3* db, std::string_view sql, Statement& out) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    out.reset(raw);
    return rc;
}

// Prepares `sql` to be kept or stepped through many rows; a Failure names the database and
// the fix.
Result<Statement> tryPrepare(sqlite3* db, std::string_view sql);
// The same for the callers that throw: core::Error(Database) with that sentence.
Statement prepareOrThrow(sqlite3* db, std::string_view sql);

// Binds parameters 1, 2, ... in order. A failed bind is kept (the first one wins) and the
// rest are skipped, so callers check rc() once before stepping. No statement (a prepare that
// failed) is a failed bind.
class Binder {
public:
    explicit Binder(sqlite3_stmt* stmt)
        : stmt_(stmt), rc_(stmt != nullptr ? SQLITE_OK : SQLITE_MISUSE) {}

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
    // By the value's type: text, an integer, a flag (0 or 1) or an optional integer (NULL).
    Binder& value(std::string_view bound) { return text(bound); }
    Binder& value(std::int64_t bound) { return int64(bound); }
    template <std::same_as<bool> Flag>
    Binder& value(Flag flag) {
        return int64(flag ? 1 : 0);
    }
    template <typename T>
    Binder& value(const std::optional<T>& bound) {
        return optionalInt(bound);
    }
    template <typename... Values>
    Binder& values(const Values&... bound) {
        (value(bound), ...);
        return *this;
    }
    int rc() const { return rc_; }

private:
    sqlite3_stmt* stmt_;
    int index_ = 1;
    int rc_;
};

// The current row of a statement, read column by column in the order the SELECT names them.
class Row {
public:
    explicit Row(sqlite3_stmt* stmt) : stmt_(stmt) {}
    std::int64_t int64() { return sqlite3_column_int64(stmt_, column_++); }
    int int32() { return sqlite3_column_int(stmt_, column_++); }
    bool flag() { return int64() != 0; }
    std::string text() {
        const int column = column_++;
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
        if (text == nullptr) return {};
        return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
    }
    std::optional<std::int64_t> optionalInt() {
        if (sqlite3_column_type(stmt_, column_) == SQLITE_NULL) {
            ++column_;
            return std::nullopt;
        }
        return int64();
    }
    // The next columns into `out`, each as its type says (Binder::values in reverse): text,
    // an integer, a flag, or an optional integer (NULL: nullopt).
    template <typename... Fields>
    void into(Fields&... out) {
        (read(out), ...);
    }

private:
    void read(std::string& out) { out = text(); }
    void read(std::int64_t& out) { out = int64(); }
    void read(int& out) { out = int32(); }
    void read(bool& out) { out = flag(); }
    template <typename T>
    void read(std::optional<T>& out) {
        const auto value = optionalInt();
        out = value ? std::optional<T>(static_cast<T>(*value)) : std::nullopt;
    }

    sqlite3_stmt* stmt_;
    int column_ = 0;
};

// One sentence for the operator: what could not be done, in which file, and why.
Failure failure(const Database& db, const std::string& what);
// The same sentence, thrown as core::Error(Database).
[[noreturn]] void fail(const Database& db, const std::string& what);

// One read: prepared from `sql`, bound through bind(), then stepped to its end (or until
// the reader stops). Every failure on the way is the one Failure its first read returns:
// "cannot <what> in database ...", or the prepare's own sentence.
class Query {
public:
    Query(const Database& db, std::string_view sql, std::string what);
    Binder& bind() { return binder_; }

    // Hands each row to `visit`, which returns false to stop early.
    template <typename Visit>
    Result<Done> each(Visit&& visit) {
        if (!statement_.ok()) return Failure{statement_.error()};
        if (binder_.rc() != SQLITE_OK) return failure(db_, what_);
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(statement_.value().get())) == SQLITE_ROW) {
            Row row(statement_.value().get());
            if (!visit(row)) return Done{};
        }
        if (rc != SQLITE_DONE) return failure(db_, what_);
        return Done{};
    }
    // Every row, as `read` makes it from a Row.
    template <typename Read>
    auto all(Read&& read) -> Result<std::vector<std::invoke_result_t<Read&, Row&>>> {
        std::vector<std::invoke_result_t<Read&, Row&>> rows;
        const auto done = each([&](Row& row) {
            rows.push_back(read(row));
            return true;
        });
        if (!done.ok()) return Failure{done.error()};
        return rows;
    }
    // The first row, as `read` makes it; nullopt when there is none.
    template <typename Read>
    auto first(Read&& read) -> Result<std::optional<std::invoke_result_t<Read&, Row&>>> {
        std::optional<std::invoke_result_t<Read&, Row&>> found;
        const auto done = each([&](Row& row) {
            found = read(row);
            return false;
        });
        if (!done.ok()) return Failure{done.error()};
        return found;
    }

private:
    const Database& db_;
    std::string what_;
    Result<Statement> statement_;
    Binder binder_;
};

// Resets a statement and drops its bindings so it holds no read transaction open.
inline void rewind(sqlite3_stmt* stmt) {
    // reset() repeats the last step's error, which the caller has already handled;
    // clear_bindings() cannot fail on a valid statement.
    (void)sqlite3_reset(stmt);
    (void)sqlite3_clear_bindings(stmt);
}

// The database's directory must be there and writable: WAL keeps two files (and the
// writer lock one) next to the database. Throws core::Error(Database), naming the fix.
void checkDirectory(const std::string& path, bool exists);

// Steps a write statement once and rewinds it; SQLITE_OK when it completed.
int run(sqlite3_stmt* stmt);

// Prepares a write statement, binds `values` to its parameters in order (Binder::value)
// and runs it once; returns the first failing sqlite code, else SQLITE_OK.
template <typename... Values>
int runOnce(sqlite3* db, std::string_view sql, const Values&... values) {
    Statement stmt;
    if (const int rc = prepare(db, sql, stmt); rc != SQLITE_OK) return rc;
    Binder bind(stmt.get());
    if (bind.values(values...).rc() != SQLITE_OK) return bind.rc();
    return run(stmt.get());
}

// Applies one alert change inside the caller's transaction; returns the sqlite code.
int writeAlert(sqlite3* db, const AlertWrite& change);
// Writes a delivery's outcome to its outbox row inside the caller's transaction.
int writeOutboxUpdate(sqlite3* db, const OutboxUpdate& update);

}  // namespace cerberus::store::detail
