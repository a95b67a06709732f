#pragma once

// Where each value of a JSON document starts, so a rule error can name its line.

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cerberus::rules::detail {

struct JsonLines {
    // JSON pointer -> 1-based line. For an object member, the line of its key.
    std::unordered_map<std::string, int> line_of;
    // Members whose key already appeared in the same object (JSON pointer of the member).
    std::vector<std::string> duplicate_keys;

    // The line of `pointer`, else of its nearest ancestor that has one, else 1.
    int lineOf(std::string_view pointer) const;
};

// `text` must be valid JSON (parse it with nlohmann first): this pass only measures.
JsonLines scanLines(std::string_view text);

// One reference token of a JSON pointer: '~' -> "~0", '/' -> "~1".
std::string escapePointerToken(std::string_view token);

}  // namespace cerberus::rules::detail
