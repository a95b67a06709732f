#pragma once

// The last lines a unit's run logged, from the local journal (sd_journal), for the alert
// that quotes them. Empty when there is no journal or the run logged nothing.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "notify/payload.hpp"

struct sd_journal;

namespace cerberus::notify {

// MESSAGE_ID= of the journal entry written for each kind of alert change (made with
// `systemd-id128 new`; fixed: `journalctl MESSAGE_ID=...` relies on them).
inline constexpr std::string_view MESSAGE_ID_FIRE = "f8230600c1ff4f91ba27534e3f327682";
inline constexpr std::string_view MESSAGE_ID_REPEAT = "36b5369ec3404dd2ac05d9412cb5737d";
inline constexpr std::string_view MESSAGE_ID_UNSILENCE = "54f34d7752e24b6cae37e490b4e44d01";
inline constexpr std::string_view MESSAGE_ID_RESOLVE = "b22f347913484625af933bdb9a1ec0c9";
std::string_view messageId(Change change);

// The alert's identity across its fire, repeats, unsilence and resolve:
// "RULE/UNIT/STARTED_USEC".
std::string alertKey(const Notification& n);

// Writes one structured journal entry for an alert change: MESSAGE (the `log` receiver's
// line), MESSAGE_ID, PRIORITY, UNIT, CERBERUS_RULE, CERBERUS_ALERT_ID, CERBERUS_SEVERITY,
// CERBERUS_COUNT, CERBERUS_NOTIFICATION_ID. A journal that is not there is not an error:
// the entry is lost, as a log line would be.
void journalAlert(const Notification& n);

// False when the host keeps a system journal but none of its files can be opened (the
// process is neither root nor in the systemd-journal group): alerts of system units then
// carry no journal lines.
bool systemJournalReadable();

class JournalReader {
public:
    // The newest `lines` messages (oldest first) of the run with `invocation_id` (32 hex
    // digits); with no invocation id, of the unit.
    std::vector<std::string> lastLines(const std::string& unit, const std::string& invocation_id,
                                       int lines);

private:
    struct Closer {
        void operator()(sd_journal* j) const;
    };
    std::unique_ptr<sd_journal, Closer> journal_;  // opened on first use and after a miss
};

}  // namespace cerberus::notify
