#include "ingest/manager_journal.hpp"

#include <systemd/sd-journal.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string_view>

namespace cerberus::ingest {

namespace {

constexpr std::string_view RESTART_SCHEDULED = "5eb03494b6584870a536b337290809b3";
constexpr std::string_view UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c";
constexpr std::string_view PROCESS_EXITED = "98e322203f7a4ed290d09fe03c09fe15";
// The most restarts explained at one reconcile: older ones keep the guess, and the read
// stays bounded however long nobody watched.
constexpr std::int64_t RESTARTS_READ_MAX = 10000;
// Entries read at the most per restart wanted (its restart, failure and exit messages), plus
// slack for the messages of runs that are not.
constexpr std::int64_t ENTRIES_PER_RESTART = 3;
constexpr std::int64_t ENTRIES_SLACK = 64;
// The journal's timestamps and `since` come from the same clock; this covers a heartbeat
// recorded a little after the last state that was stored.
constexpr core::Usec SINCE_SLACK_USEC = 10 * core::USEC_PER_SEC;
// How long one reconcile may wait, in all, for journald to store what the manager just sent.
constexpr core::Usec LAG_WAIT_MAX_USEC = 500 * core::USEC_PER_MSEC;

// The value of field `name` of the current entry ("NAME=value", not NUL-terminated).
std::optional<std::string_view> value(sd_journal* j, const char* name) {
    const void* data = nullptr;
    size_t length = 0;
    if (sd_journal_get_data(j, name, &data, &length) < 0) return std::nullopt;
    const std::size_t prefix = std::strlen(name) + 1;
    if (length < prefix) return std::nullopt;
    return std::string_view(static_cast<const char*>(data) + prefix, length - prefix);
}

std::optional<std::int64_t> number(std::optional<std::string_view> text) {
    if (!text) return std::nullopt;
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), n);
    if (ec != std::errc() || end != text->data() + text->size()) return std::nullopt;
    return n;
}

// When the current entry was logged, on both clocks (monotonic only for this boot's).
void readTimes(sd_journal* j, ManagerMessage& out) {
    std::uint64_t realtime = 0;
    if (sd_journal_get_realtime_usec(j, &realtime) >= 0)
        out.at_usec = static_cast<core::Usec>(realtime);
    std::uint64_t mono = 0;
    sd_id128_t entry_boot{};
    sd_id128_t boot{};
    if (sd_journal_get_monotonic_usec(j, &mono, &entry_boot) >= 0 &&
        sd_id128_get_boot(&boot) >= 0 && sd_id128_equal(entry_boot, boot))
        out.at_mono = static_cast<core::Usec>(mono);
}

std::optional<ManagerMessage> readMessage(sd_journal* j, const char* invocation_field) {
    const auto id = value(j, "MESSAGE_ID");
    const auto invocation = value(j, invocation_field);
    if (!id || !invocation || invocation->empty()) return std::nullopt;
    ManagerMessage m;
    m.invocation_id = std::string(*invocation);
    readTimes(j, m);
    if (*id == RESTART_SCHEDULED) {
        const auto n = number(value(j, "N_RESTARTS"));
        if (!n) return std::nullopt;
        m.kind = ManagerMessage::Kind::RestartScheduled;
        m.n_restarts = *n;
    } else if (*id == UNIT_FAILED) {
        const auto result = value(j, "UNIT_RESULT");
        if (!result || result->empty()) return std::nullopt;
        m.kind = ManagerMessage::Kind::Failed;
        m.result = std::string(*result);
    } else if (*id == PROCESS_EXITED) {
        const auto code = value(j, "EXIT_CODE");
        const auto status = number(value(j, "EXIT_STATUS"));
        if (!code || !status) return std::nullopt;
        m.kind = ManagerMessage::Kind::ProcessExited;
        m.exit_code = std::string(*code);
        m.exit_status = static_cast<int>(*status);
    } else {
        return std::nullopt;
    }
    return m;
}

int addMatch(sd_journal* j, const std::string& match) {
    return sd_journal_add_match(j, match.data(), match.size());
}

}  // namespace

JournalEnds endsFromMessages(const std::vector<ManagerMessage>& newest_first, std::int64_t first,
                             std::int64_t last) {
    JournalEnds out;
    std::map<std::string, const ManagerMessage*> failed;
    std::map<std::string, const ManagerMessage*> exited;
    for (const auto& m : newest_first) {
        switch (m.kind) {
        case ManagerMessage::Kind::RestartScheduled:
            if (m.n_restarts >= first && m.n_restarts <= last && !out.count(m.n_restarts)) {
                JournalEnd& end = out[m.n_restarts];
                end.invocation_id = m.invocation_id;
                end.restarted_usec = end.ended_usec = m.at_usec;
                end.restarted_mono = end.ended_mono = m.at_mono;
            }
            break;
        case ManagerMessage::Kind::Failed:
            // A start the start limit refused is logged as failed with the last run's
            // invocation: start-limit-hit says nothing of how that run ended (a failed run's
            // own result is logged again, which changes nothing).
            if (m.result != "start-limit-hit") failed.emplace(m.invocation_id, &m);
            break;
        case ManagerMessage::Kind::ProcessExited: exited.emplace(m.invocation_id, &m); break;
        }
    }
    for (auto& [restart, end] : out) {
        if (const auto it = failed.find(end.invocation_id); it != failed.end()) {
            end.result = it->second->result;
            end.ended_usec = it->second->at_usec;
            end.ended_mono = it->second->at_mono;
        }
        if (const auto it = exited.find(end.invocation_id); it != exited.end()) {
            end.exit_code = it->second->exit_code;
            end.exit_status = it->second->exit_status;
            end.ended_usec = it->second->at_usec;
            end.ended_mono = it->second->at_mono;
        }
    }
    return out;
}

void ManagerJournal::Closer::operator()(sd_journal* j) const { sd_journal_close(j); }

JournalEnds ManagerJournal::endsBefore(const std::string& unit, std::int64_t first,
                                       std::int64_t last, pid_t manager_pid,
                                       std::optional<core::Usec> since_usec) {
    if (manager_pid <= 0 || last < first) return {};
    if (last - first >= RESTARTS_READ_MAX) first = last - RESTARTS_READ_MAX + 1;
    const Query query{unit, first, last, manager_pid, since_usec};
    auto read = readBack(query);
    // journald stores what the manager sent a moment ago a little later: while the newest
    // restart wanted is missing from a journal that holds this manager's messages, wait for
    // it, within the reconcile's budget.
    if (!read.messages.empty()) logging_manager_ = manager_pid;
    while (read.open && !read.newest_found && logging_manager_ == manager_pid &&
           wait_left_usec_ > 0) {
        const auto before = std::chrono::steady_clock::now();
        const int woke =
            sd_journal_wait(journal_.get(), static_cast<std::uint64_t>(wait_left_usec_));
        wait_left_usec_ -= std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - before)
                               .count();
        if (woke < 0) break;
        read = readBack(query);
    }
    return endsFromMessages(read.messages, first, last);
}

void ManagerJournal::beginReconcile() {
    journal_.reset();
    tried_open_ = false;
    wait_left_usec_ = LAG_WAIT_MAX_USEC;
}

void ManagerJournal::endReconcile() { journal_.reset(); }

ManagerJournal::ReadBack ManagerJournal::readBack(const Query& q) {
    ReadBack out;
    if (!tried_open_) {
        // Once per reconcile, and only when a unit restarted unseen (a daemon-reload where
        // nothing did leaves the journal alone). Opened afresh, it holds every journal file
        // there is now; a failure (out of file descriptors) leaves this reconcile to guess.
        tried_open_ = true;
        sd_journal* j = nullptr;
        if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY) >= 0) journal_.reset(j);
    }
    if (!journal_) return out;
    sd_journal* j = journal_.get();
    sd_journal_flush_matches(j);
    const bool system = q.manager_pid == 1;
    int rc = 0;
    // One field's matches are alternatives; different fields must all hold.
    for (const auto id : {RESTART_SCHEDULED, UNIT_FAILED, PROCESS_EXITED})
        if (rc >= 0) rc = addMatch(j, "MESSAGE_ID=" + std::string(id));
    if (rc >= 0) rc = addMatch(j, (system ? "UNIT=" : "USER_UNIT=") + q.unit);
    if (rc >= 0) rc = addMatch(j, "_PID=" + std::to_string(q.manager_pid));
    if (rc < 0 || sd_journal_seek_tail(j) < 0) {
        journal_.reset();
        return out;
    }
    out.open = true;
    const char* invocation_field = system ? "INVOCATION_ID" : "USER_INVOCATION_ID";
    std::set<std::int64_t> missing;
    for (std::int64_t n = q.first; n <= q.last; ++n) missing.insert(n);
    std::set<std::string> runs;  // whose end is wanted
    const std::int64_t budget = (q.last - q.first + 1) * ENTRIES_PER_RESTART + ENTRIES_SLACK;
    for (std::int64_t read = 0; read < budget && sd_journal_previous(j) > 0; ++read) {
        std::uint64_t at = 0;
        if (q.since_usec && sd_journal_get_realtime_usec(j, &at) >= 0 &&
            static_cast<core::Usec>(at) + SINCE_SLACK_USEC < *q.since_usec)
            break;
        auto m = readMessage(j, invocation_field);
        if (!m) continue;
        if (m->kind == ManagerMessage::Kind::RestartScheduled) {
            // The restart that began the oldest run wanted: its end was read already.
            if (missing.empty() && !runs.count(m->invocation_id)) break;
            if (m->n_restarts == q.last) out.newest_found = true;
            if (missing.erase(m->n_restarts) > 0) runs.insert(m->invocation_id);
        }
        out.messages.push_back(std::move(*m));
    }
    return out;
}

}  // namespace cerberus::ingest
