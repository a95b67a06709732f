#pragma once

// A non-blocking client over libcurl's multi interface: HTTP POSTs and SMTP submissions.
// It keeps its sockets in
// an epoll set of its own: the daemon watches fd() in its loop and calls process() when
// it is readable or deadline() has passed, so no request ever blocks the loop.

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/fd.hpp"
#include "core/time.hpp"

namespace cerberus::notify {

inline constexpr std::size_t RESPONSE_BODY_MAX = 4096;  // bytes kept of any answer
inline constexpr core::Usec CONNECT_TIMEOUT_MAX_USEC = 5 * core::USEC_PER_SEC;

enum class MailTls : std::uint8_t { Required, Try, None };

// What an smtp:// or smtps:// request adds: the envelope and the login. The request's
// body is then the whole message (headers, blank line, body; CRLF line ends).
struct MailEnvelope {
    std::string from;             // an address alone: "cerberus@example.com"
    std::vector<std::string> to;  // addresses alone
    std::string username;         // empty: no AUTH
    std::string password;
    MailTls tls = MailTls::Required;  // STARTTLS on smtp://; smtps:// is TLS from the start
    std::string ca_file;              // empty: the system's CAs
};

struct HttpRequest {
    std::string url;
    std::string body;
    std::vector<std::string> headers;  // "Name: value"
    core::Usec timeout_usec = 10 * core::USEC_PER_SEC;
    std::optional<MailEnvelope> mail;  // set for SMTP
};

struct HttpResponse {
    bool mail = false;        // an SMTP submission: `status` is the server's last reply code
    long status = 0;          // 0 when no HTTP answer came
    std::string body;         // at most RESPONSE_BODY_MAX bytes
    std::string retry_after;  // the Retry-After header, if any
    std::string error;        // transport failure (timeout, refused, TLS), empty otherwise
};

class HttpClient {
public:
    using Callback = std::function<void(HttpResponse)>;

    HttpClient();  // throws core::Error
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Starts a POST; `done` runs from a later process(), never from inside post().
    void post(const HttpRequest& request, Callback done);

    int fd() const { return epoll_.get(); }
    // Does what the sockets and timers ask and runs the callbacks of finished requests.
    void process();
    std::optional<core::Usec> deadline() const { return deadline_; }  // CLOCK_MONOTONIC
    std::size_t inFlight() const { return transfers_.size(); }

    struct Transfer;

private:
    static int onSocket(void* easy, int fd, int what, void* self, void* socketp);
    static int onTimer(void* multi, long timeout_ms, void* self);
    void finish();

    void* multi_ = nullptr;  // CURLM*
    core::UniqueFd epoll_;
    std::optional<core::Usec> deadline_;
    std::map<void*, std::unique_ptr<Transfer>> transfers_;  // by CURL*
};

}  // namespace cerberus::notify
