#include "rules/json_lines.hpp"

#include <nlohmann/json.hpp>
#include <unordered_set>

namespace cerberus::rules::detail {

namespace {

// Deeper values are skipped without lines: rule files are a few levels deep, and the
// recursion must not follow a hostile file down to a stack overflow.
constexpr int DEPTH_MAX = 64;

class Scanner {
public:
    explicit Scanner(std::string_view text) : text_(text) {}

    JsonLines run() {
        if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;  // nlohmann skips a UTF-8 BOM too
        value("", 0, true);
        return std::move(out_);
    }

private:
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

    void skipSpace() {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == '\n') {
                ++line_;
            } else if (c != ' ' && c != '\t' && c != '\r') {
                return;
            }
            ++pos_;
        }
    }

    std::string_view rawString() {
        const std::size_t begin = pos_++;
        while (pos_ < text_.size() && text_[pos_] != '"') pos_ += text_[pos_] == '\\' ? 2 : 1;
        ++pos_;
        return text_.substr(begin, pos_ - begin);
    }

    void skipScalar() {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c == ',' || c == ']' || c == '}' || c == ' ' || c == '\t' || c == '\r' || c == '\n')
                return;
            ++pos_;
        }
    }

    void skipNested() {
        int depth = 0;
        do {
            const char c = peek();
            if (c == '"') {
                rawString();
                continue;
            }
            if (c == '\n') ++line_;
            if (c == '{' || c == '[') ++depth;
            if (c == '}' || c == ']') --depth;
            ++pos_;
        } while (depth > 0 && pos_ < text_.size());
    }

    void value(const std::string& pointer, int depth, bool record) {
        skipSpace();
        if (record) out_.line_of[pointer] = line_;
        const char c = peek();
        if ((c == '{' || c == '[') && depth >= DEPTH_MAX) {
            skipNested();
        } else if (c == '{') {
            object(pointer, depth);
        } else if (c == '[') {
            array(pointer, depth);
        } else if (c == '"') {
            rawString();
        } else {
            skipScalar();
        }
    }

    // Steps into an object or array; false, having stepped over `close` too, when it is empty.
    bool enter(char close) {
        ++pos_;
        skipSpace();
        if (peek() != close) return true;
        ++pos_;
        return false;
    }

    // After a member or element: true, past the ',', when another one follows.
    bool another() {
        skipSpace();
        if (peek() != ',') return false;
        ++pos_;
        return true;
    }

    void object(const std::string& pointer, int depth) {
        if (!enter('}')) return;
        std::unordered_set<std::string> seen;
        while (pos_ < text_.size()) {
            skipSpace();
            const int key_line = line_;
            const auto key = nlohmann::json::parse(rawString()).get<std::string>();
            const std::string child = pointer + "/" + escapePointerToken(key);
            if (!seen.insert(key).second) out_.duplicate_keys.push_back(child);
            out_.line_of[child] = key_line;
            skipSpace();
            ++pos_;  // ':'
            value(child, depth + 1, false);
            if (!another()) break;
        }
        ++pos_;  // '}'
    }

    void array(const std::string& pointer, int depth) {
        if (!enter(']')) return;
        for (std::size_t i = 0; pos_ < text_.size(); ++i) {
            value(pointer + "/" + std::to_string(i), depth + 1, true);
            if (!another()) break;
        }
        ++pos_;  // ']'
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    int line_ = 1;
    JsonLines out_;
};

}  // namespace

int JsonLines::lineOf(std::string_view pointer) const {
    std::string p(pointer);
    for (;;) {
        if (auto it = line_of.find(p); it != line_of.end()) return it->second;
        const auto slash = p.rfind('/');
        if (slash == std::string::npos) return 1;
        p.resize(slash);
    }
}

JsonLines scanLines(std::string_view text) { return Scanner(text).run(); }

std::string escapePointerToken(std::string_view token) {
    std::string out;
    out.reserve(token.size());
    for (const char c : token) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace cerberus::rules::detail
