#pragma once

// What each fuzz target does with one input, shared by the libFuzzer executables (clang,
// -Dfuzz=true) and by fuzz_corpus, which replays every saved input in the normal build.
// Each entry aborts when an invariant breaks, so a fuzzer reports it as a crash.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cerberus::fuzz {

using Entry = void (*)(std::span<const std::uint8_t> data);

// A rule file given as a buffer: every error is one "fuzz.json:LINE..." sentence, never a
// nlohmann exception; a valid set renders its summaries and matches units.
void rules(std::span<const std::uint8_t> data);
// Durations and times: parse, format, parse again gives the same value.
void time(std::span<const std::uint8_t> data);
// One emit request line: a request or one error sentence; a parsed request encodes to a
// line that parses to the same request, and maps to transitions.
void emit(std::span<const std::uint8_t> data);
// supervisord's listener protocol: a header line, then the payload. What the listener
// would send is a request the daemon accepts.
void supervisor(std::span<const std::uint8_t> data);

// The entry named like the corpus directory ("rules", "time", "emit", "supervisor").
Entry entryNamed(std::string_view name);

}  // namespace cerberus::fuzz
