#include "notify/journal.hpp"

#include <systemd/sd-journal.h>

#include <algorithm>

#include "notify/payload.hpp"

namespace cerberus::notify {

namespace {

sd_journal* handle(void* p) { return static_cast<sd_journal*>(p); }

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

JournalReader::~JournalReader() {
    if (journal_) sd_journal_close(handle(journal_));
}

std::vector<std::string> JournalReader::lastLines(const std::string& unit,
                                                  const std::string& invocation_id, int lines) {
    std::vector<std::string> out;
    if (lines <= 0) return out;
    if (journal_ == nullptr) {
        sd_journal* j = nullptr;
        // Tried again at the next alert: a failure may pass (out of file descriptors).
        if (sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY) < 0) return out;
        journal_ = j;
    }
    sd_journal* j = handle(journal_);
    // Picks up journal files created since the last call.
    sd_journal_process(j);
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
        sd_journal_close(j);
        journal_ = nullptr;
        return out;
    }
    const int wanted = std::min(lines, static_cast<int>(JOURNAL_LINES_MAX));
    while (static_cast<int>(out.size()) < wanted && sd_journal_previous(j) > 0)
        out.push_back(truncateUtf8(field(j, "MESSAGE"), JOURNAL_LINE_MAX));
    std::reverse(out.begin(), out.end());
    if (out.empty()) {
        // An open that ran short of file descriptors succeeds without some journal files and
        // never adds them later: a journal that found nothing is opened afresh next time.
        sd_journal_close(j);
        journal_ = nullptr;
    }
    return out;
}

}  // namespace cerberus::notify
