#pragma once

// The daemon's log lines on stderr. When stderr is the journal (systemd sets
// $JOURNAL_STREAM to its device and inode), each line starts with its priority as
// sd-daemon.h's SD_ERR ... SD_DEBUG do ("<3>"), so `journalctl -p err` picks out failures;
// on a terminal or a pipe the lines stay plain.

#include <cstdint>
#include <string>
#include <string_view>

namespace cerberus::core {

// syslog(3)'s numbers, which journald reads from the prefix.
enum class Priority { Err = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

// True when `journal_stream` ($JOURNAL_STREAM, "DEV:INO" in decimal) names the file with
// device `dev` and inode `ino`; false when it is unset, malformed or names another file
// (stderr redirected by the service's own command line, or inherited by a child).
bool streamIsJournal(const char* journal_stream, std::uint64_t dev, std::uint64_t ino);

// "cerberus: " + `line` + '\n'; for the journal, every line of a multi-line message starts
// with the priority, so the continuation lines are not read as info.
std::string logText(Priority priority, std::string_view line, bool to_journal);

// Whether this process's stderr is the journal, decided once.
bool stderrIsJournal();

// Writes logText() to stderr.
void log(Priority priority, std::string_view line);

}  // namespace cerberus::core
