#include "notify/journal.hpp"

#include <systemd/sd-journal.h>
#include <unistd.h>

#include <algorithm>

#include "notify/dispatcher.hpp"
#include "notify/payload.hpp"

namespace cerberus::notify {

namespace {

std::string field(sd_journal* j, const char* name) {
    const void* data = nullptr;
    size_t length = 0;
    if (sd_journal_get_data(j, name, &data, &length) < 0) return {};
    // "MESSAGE=..." and not NUL-terminated.
    const std::string_view text(static_cast<const char*>(data), length);
    const auto eq = text.find('=');
    return eq == std::string_view::npos ? std::string() : std::string(text.substr(eq + 1));
}

}  // namespace

void JournalReader::Closer::operator()(sd_journal* j) const { sd_journal_close(j); }

std::vector<std::string> JournalReader::lastLines(const std::string& unit,
                                                  const std::string& invocation_id, int lines) {
    std::vector<std::string> out;
    if (lines <= 0) return out;
    if (!journal_) {
        sd_journal* j = nullptr;
        // Tried again at the next alert: a failure may pass (out of file descriptors).
        if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY) < 0) return out;
        journal_.reset(j);
    }
    sd_journal* j = journal_.get();
    // Picks up journal files created since the last call.
    (void)sd_journal_process(j);  // what changed is not needed: the read starts at the tail
    sd_journal_flush_matches(j);
    int rc = 0;
    if (!invocation_id.empty()) {
        const std::string match = "_SYSTEMD_INVOCATION_ID=" + invocation_id;
        rc = sd_journal_add_match(j, match.data(), match.size());
    } else {
        // System or user unit: the two fields are alternatives.
        const std::string system = "_SYSTEMD_UNIT=" + unit;
        const std::string user = "_SYSTEMD_USER_UNIT=" + unit;
        rc = sd_journal_add_match(j, system.data(), system.size());
        if (rc >= 0) rc = sd_journal_add_disjunction(j);
        if (rc >= 0) rc = sd_journal_add_match(j, user.data(), user.size());
    }
    if (rc < 0 || sd_journal_seek_tail(j) < 0) {
        journal_.reset();
        return out;
    }
    const int wanted = std::min(lines, static_cast<int>(JOURNAL_LINES_MAX));
    while (static_cast<int>(out.size()) < wanted && sd_journal_previous(j) > 0)
        out.push_back(truncateUtf8(field(j, "MESSAGE"), JOURNAL_LINE_MAX));
    std::reverse(out.begin(), out.end());
    if (out.empty()) {
        // An open that ran short of file descriptors succeeds without some journal files and
        // never adds them later: a journal that found nothing is opened afresh next time.
        journal_.reset();
    }
    return out;
}

std::string_view messageId(Change change) {
    switch (change) {
    case Change::Fire: return MESSAGE_ID_FIRE;
    case Change::Repeat: return MESSAGE_ID_REPEAT;
    case Change::Unsilence: return MESSAGE_ID_UNSILENCE;
    case Change::Resolve: return MESSAGE_ID_RESOLVE;
    }
    return MESSAGE_ID_FIRE;
}

std::string alertKey(const Notification& n) {
    return n.rule + "/" + n.unit + "/" + std::to_string(n.started_usec);
}

void journalAlert(const Notification& n) {
    const std::string message = "cerberus: " + logLine(n);
    const std::string id(messageId(n.change));
    const std::string key = alertKey(n);
    const std::string severity(rules::toString(n.severity));
    // The fields are sent as given ("%s"): a unit or rule name is never a format. An entry
    // journald refuses is not retried: the receivers and the history hold the alert anyway.
    (void)sd_journal_send("MESSAGE=%s", message.c_str(), "MESSAGE_ID=%s", id.c_str(), "PRIORITY=%d",
                          static_cast<int>(logPriority(n)), "UNIT=%s", n.unit.c_str(),
                          "CERBERUS_RULE=%s", n.rule.c_str(), "CERBERUS_ALERT_ID=%s", key.c_str(),
                          "CERBERUS_CHANGE=%s", std::string(toString(n.change)).c_str(),
                          "CERBERUS_SEVERITY=%s", severity.c_str(), "CERBERUS_COUNT=%zu", n.count,
                          "CERBERUS_NOTIFICATION_ID=%s", n.id.c_str(), "SYSLOG_IDENTIFIER=cerberus",
                          nullptr);
}

bool systemJournalReadable() {
    if (access("/run/log/journal", F_OK) != 0 && access("/var/log/journal", F_OK) != 0)
        return true;  // no journal kept on this host: nothing that could be read
    sd_journal* j = nullptr;
    if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM) < 0) return false;
    // Files that could not be opened (EACCES) are skipped, and count as neither.
    const bool readable =
        sd_journal_has_runtime_files(j) > 0 || sd_journal_has_persistent_files(j) > 0;
    sd_journal_close(j);
    return readable;
}

}  // namespace cerberus::notify
