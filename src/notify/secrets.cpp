#include "notify/secrets.hpp"

#include <optional>

#include "core/file.hpp"

namespace cerberus::notify {

namespace {

class Resolver {
public:
    Resolver(const rules::Receiver& receiver, const GetEnv& getenv,
             std::vector<std::string>& errors)
        : receiver_(receiver), getenv_(getenv), errors_(errors) {}

    std::optional<std::string> operator()(const rules::Secret& secret, std::string_view key) {
        switch (secret.kind) {
        case rules::Secret::Kind::Literal: return secret.value;
        case rules::Secret::Kind::Env: {
            const char* value = getenv_(secret.value.c_str());
            if (value == nullptr || *value == '\0') {
                fail(key, "environment variable '" + secret.value +
                              "' is not set or empty; set it in cerberus's environment (for a "
                              "unit: Environment= or EnvironmentFile=)");
                return std::nullopt;
            }
            return std::string(value);
        }
        case rules::Secret::Kind::File: return readFile(secret.value, key);
        }
        return std::nullopt;
    }

    void fail(std::string_view key, const std::string& what) {
        errors_.push_back("receiver '" + receiver_.name + "' (" + receiver_.origin + "): '" +
                          std::string(key) + "': " + what);
    }

private:
    std::optional<std::string> readFile(const std::string& path, std::string_view key) {
        // What `cerberus check` says of the file, said the same way here.
        if (auto why = rules::secretFileError(path); !why.empty()) {
            fail(key, why);
            return std::nullopt;
        }
        // Read like a rule file: a FIFO would block the daemon's loop on SIGHUP, a symlink
        // to /dev/zero would be read until memory runs out.
        auto file = core::readRegularFile(path, rules::SECRET_FILE_MAX);
        if (!file.text) {
            fail(key, "secret file '" + path + "': " + file.error +
                          "; put the secret alone in a regular file of at most " +
                          core::formatBytes(rules::SECRET_FILE_MAX));
            return std::nullopt;
        }
        std::string value = std::move(*file.text);
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r' ||
                                  value.back() == ' ' || value.back() == '\t'))
            value.pop_back();
        if (value.empty()) {
            // Only blanks: `cerberus check` reads no secret, so only this can tell.
            fail(key, "secret file '" + path + "': it holds only blanks; put the secret in it");
            return std::nullopt;
        }
        return value;
    }

    const rules::Receiver& receiver_;
    const GetEnv& getenv_;
    std::vector<std::string>& errors_;
};

}  // namespace

Targets resolveTargets(const std::vector<rules::Receiver>& receivers, const GetEnv& getenv) {
    Targets out;
    for (const auto& receiver : receivers) {
        Resolver resolve(receiver, getenv, out.errors);
        const std::size_t before = out.errors.size();
        Target target;
        target.receiver = receiver;
        if (receiver.url) {
            if (auto url = resolve(*receiver.url, "url")) {
                if (receiver.type == rules::ReceiverType::Email) {
                    if (!rules::isSmtpUrl(*url))
                        resolve.fail("url",
                                     "the value is not an smtp:// or smtps:// URL; check "
                                     "what it holds");
                } else if (!rules::isHttpUrl(*url)) {
                    resolve.fail("url", "the value is not an http(s) URL; check what it holds");
                }
                target.url = std::move(*url);
            }
        } else if (receiver.type == rules::ReceiverType::PagerDuty) {
            target.url = std::string(PAGERDUTY_URL_DEFAULT);
        }
        if (receiver.routing_key) {
            if (auto key = resolve(*receiver.routing_key, "routing_key"))
                target.routing_key = std::move(*key);
        }
        if (receiver.password) {
            if (auto password = resolve(*receiver.password, "password"))
                target.password = std::move(*password);
        }
        if (receiver.secret) {
            if (auto secret = resolve(*receiver.secret, "secret")) {
                if (auto why = rules::webhookSecretError(*secret); !why.empty())
                    resolve.fail("secret", why);
                target.signing_secret = std::move(*secret);
            }
        }
        if (out.errors.size() == before) out.by_name.emplace(receiver.name, std::move(target));
    }
    return out;
}

}  // namespace cerberus::notify
