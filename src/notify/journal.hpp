#pragma once

// The last lines a unit's run logged, from the local journal (sd_journal), for the alert
// that quotes them. Empty when there is no journal or the run logged nothing.

#include <string>
#include <vector>

namespace cerberus::notify {

class JournalReader {
public:
    JournalReader() = default;
    ~JournalReader();
    JournalReader(const JournalReader&) = delete;
    JournalReader& operator=(const JournalReader&) = delete;

    // The newest `lines` messages (oldest first) of the run with `invocation_id` (32 hex
    // digits); with no invocation id, of the unit.
    std::vector<std::string> lastLines(const std::string& unit, const std::string& invocation_id,
                                       int lines);

private:
    void* journal_ = nullptr;  // sd_journal*, opened on first use and after a miss
};

}  // namespace cerberus::notify
