#include "notify/http.hpp"

#include <curl/curl.h>
#include <strings.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.hpp"

namespace cerberus::notify {

namespace {

const core::SystemClock CLOCK;

struct SlistFree {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            throw core::Error(core::ExitCode::Failure, "cannot initialise libcurl");
    });
}

std::string trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == '\r' || text.back() == '\n' || text.back() == ' '))
        text.remove_suffix(1);
    return std::string(text);
}

}  // namespace

struct HttpClient::Transfer {
    CURL* easy = nullptr;
    std::string body;
    std::size_t sent = 0;  // of `body`, for an SMTP upload
    std::unique_ptr<curl_slist, SlistFree> headers;
    std::unique_ptr<curl_slist, SlistFree> recipients;
    HttpResponse response;
    Callback done;
    char error[CURL_ERROR_SIZE] = {};
    CURLcode setup = CURLE_OK;  // the first option libcurl refused, if any

    // curl_easy_setopt, keeping the first refusal: a request set up wrong is never sent.
    template <typename T>
    void set(CURLoption option, T value) {
        const CURLcode code = curl_easy_setopt(easy, option, value);
        if (code != CURLE_OK && setup == CURLE_OK) setup = code;
    }

    // curl_slist_append, keeping the list whole: when it fails (no memory) the request is
    // not sent.
    void append(std::unique_ptr<curl_slist, SlistFree>& list, const std::string& text) {
        curl_slist* longer = curl_slist_append(list.get(), text.c_str());
        if (longer == nullptr) {
            if (setup == CURLE_OK) setup = CURLE_OUT_OF_MEMORY;
            return;
        }
        (void)list.release();  // `longer` holds it
        list.reset(longer);
    }

    ~Transfer() {
        if (easy) curl_easy_cleanup(easy);
    }

    static size_t onBody(char* data, size_t size, size_t n, void* self) {
        auto& out = static_cast<Transfer*>(self)->response.body;
        const size_t len = size * n;
        // The rest is read and dropped: a large answer must not grow our memory.
        if (out.size() < RESPONSE_BODY_MAX)
            out.append(data, std::min(len, RESPONSE_BODY_MAX - out.size()));
        return len;
    }

    void setMail(const MailEnvelope& mail) {
        response.mail = true;
        for (const auto& to : mail.to) append(recipients, "<" + to + ">");
        const std::string from = "<" + mail.from + ">";
        set(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        set(CURLOPT_MAIL_FROM, from.c_str());  // copied by curl
        set(CURLOPT_MAIL_RCPT, recipients.get());
        set(CURLOPT_UPLOAD, 1L);
        set(CURLOPT_READFUNCTION, &Transfer::onRead);
        set(CURLOPT_READDATA, this);
        set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body.size()));
        long tls = CURLUSESSL_ALL;
        if (mail.tls == MailTls::Try) tls = CURLUSESSL_TRY;
        if (mail.tls == MailTls::None) tls = CURLUSESSL_NONE;
        set(CURLOPT_USE_SSL, tls);
        if (!mail.username.empty()) {
            set(CURLOPT_USERNAME, mail.username.c_str());
            set(CURLOPT_PASSWORD, mail.password.c_str());
        }
        if (!mail.ca_file.empty()) set(CURLOPT_CAINFO, mail.ca_file.c_str());
    }

    static size_t onRead(char* buffer, size_t size, size_t n, void* self) {
        auto* t = static_cast<Transfer*>(self);
        const size_t len = std::min(size * n, t->body.size() - t->sent);
        std::copy_n(t->body.data() + t->sent, len, buffer);
        t->sent += len;
        return len;
    }

    static size_t onHeader(char* data, size_t size, size_t n, void* self) {
        const size_t len = size * n;
        constexpr std::string_view NAME = "retry-after:";
        if (len > NAME.size() && strncasecmp(data, NAME.data(), NAME.size()) == 0)
            static_cast<Transfer*>(self)->response.retry_after =
                trim(std::string_view(data + NAME.size(), len - NAME.size()));
        return len;
    }
};

HttpClient::HttpClient() {
    globalInit();
    epoll_ = core::UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_)
        throw core::Error(core::ExitCode::Failure,
                          std::string("cannot create an epoll fd: ") + std::strerror(errno));
    multi_ = curl_multi_init();
    if (multi_ == nullptr) throw core::Error(core::ExitCode::Failure, "cannot create a curl multi");
    if (curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &HttpClient::onSocket) != CURLM_OK ||
        curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this) != CURLM_OK ||
        curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &HttpClient::onTimer) != CURLM_OK ||
        curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this) != CURLM_OK)
        throw core::Error(core::ExitCode::Failure, "cannot set up the curl multi handle");
}

HttpClient::~HttpClient() {
    // Teardown: nothing is left to report to.
    for (auto& [easy, transfer] : transfers_) (void)curl_multi_remove_handle(multi_, easy);
    transfers_.clear();
    if (multi_) (void)curl_multi_cleanup(multi_);
}

int HttpClient::onSocket(void* /*easy*/, int fd, int what, void* self, void* /*socketp*/) {
    auto* client = static_cast<HttpClient*>(self);
    if (what == CURL_POLL_REMOVE) {
        // ENOENT or EBADF only: curl may have closed the socket already, which removed it.
        (void)epoll_ctl(client->epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        return 0;
    }
    epoll_event ev{};
    ev.data.fd = fd;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev.events |= EPOLLOUT;
    if (epoll_ctl(client->epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    // Not watched yet: added. Should that fail too, the request's own timeout
    // (CURLOPT_TIMEOUT_MS) still ends it and the delivery is retried.
    if (errno == ENOENT) (void)epoll_ctl(client->epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

int HttpClient::onTimer(void* /*multi*/, long timeout_ms, void* self) {
    auto* client = static_cast<HttpClient*>(self);
    if (timeout_ms < 0)
        client->deadline_.reset();
    else
        client->deadline_ = CLOCK.monotonic() + timeout_ms * core::USEC_PER_MSEC;
    return 0;
}

void HttpClient::post(const HttpRequest& request, Callback done) {
    auto transfer = std::make_unique<Transfer>();
    transfer->easy = curl_easy_init();
    transfer->done = std::move(done);
    transfer->body = request.body;
    CURL* easy = transfer->easy;
    if (easy == nullptr) {
        transfer->response.error = "cannot create a curl handle";
        // Reported from process(), like every other outcome.
        deadline_ = CLOCK.monotonic();
    }
    // No "Expect: 100-continue": it costs a round trip, or a second with some servers.
    for (const auto& header : request.headers) transfer->append(transfer->headers, header);
    transfer->append(transfer->headers, "Expect:");
    if (easy) {
        const long timeout_ms = static_cast<long>(request.timeout_usec / core::USEC_PER_MSEC);
        transfer->set(CURLOPT_URL, request.url.c_str());
        if (request.mail) {
            transfer->setMail(*request.mail);
        } else {
            transfer->set(CURLOPT_POST, 1L);
            transfer->set(CURLOPT_POSTFIELDS, transfer->body.data());
            transfer->set(CURLOPT_POSTFIELDSIZE_LARGE,
                          static_cast<curl_off_t>(transfer->body.size()));
            transfer->set(CURLOPT_HTTPHEADER, transfer->headers.get());
            transfer->set(CURLOPT_PROTOCOLS_STR, "http,https");
        }
        transfer->set(CURLOPT_TIMEOUT_MS, timeout_ms);
        transfer->set(CURLOPT_CONNECTTIMEOUT_MS,
                      std::min<long>(timeout_ms, CONNECT_TIMEOUT_MAX_USEC / core::USEC_PER_MSEC));
        transfer->set(CURLOPT_NOSIGNAL, 1L);
        transfer->set(CURLOPT_FOLLOWLOCATION, 0L);
        transfer->set(CURLOPT_SSL_VERIFYPEER, 1L);
        transfer->set(CURLOPT_SSL_VERIFYHOST, 2L);
        transfer->set(CURLOPT_USERAGENT, "cerberus/" CERBERUS_VERSION);
        transfer->set(CURLOPT_WRITEFUNCTION, &Transfer::onBody);
        transfer->set(CURLOPT_WRITEDATA, transfer.get());
        transfer->set(CURLOPT_HEADERFUNCTION, &Transfer::onHeader);
        transfer->set(CURLOPT_HEADERDATA, transfer.get());
        transfer->set(CURLOPT_ERRORBUFFER, transfer->error);
        if (transfer->setup != CURLE_OK) {
            transfer->response.error =
                std::string("cannot set up the request: ") + curl_easy_strerror(transfer->setup);
            deadline_ = CLOCK.monotonic();
            curl_easy_cleanup(easy);
            transfer->easy = nullptr;
        } else if (curl_multi_add_handle(multi_, easy) != CURLM_OK) {
            transfer->response.error = "cannot start the request";
            deadline_ = CLOCK.monotonic();
            curl_easy_cleanup(easy);
            transfer->easy = nullptr;
        }
    }
    void* key = transfer->easy ? static_cast<void*>(transfer->easy) : transfer.get();
    const bool started = transfer->easy != nullptr;
    transfers_.emplace(key, std::move(transfer));
    // Connect and write now rather than on the next wakeup: on a loopback or LAN receiver
    // the request is usually on the wire before this returns. Outcomes still come from
    // process().
    if (started) {
        int running = 0;
        // A failure shows as the transfer's own result, read in finish().
        (void)curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

void HttpClient::process() {
    int running = 0;
    epoll_event events[16];
    const int n = epoll_wait(epoll_.get(), events, 16, 0);
    for (int i = 0; i < n; ++i) {
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        // A failure shows as the transfer's own result, read in finish().
        (void)curl_multi_socket_action(multi_, events[i].data.fd, flags, &running);
    }
    if (deadline_ && *deadline_ <= CLOCK.monotonic()) {
        deadline_.reset();
        (void)curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);  // as above
    }
    finish();
}

void HttpClient::finish() {
    std::vector<std::unique_ptr<Transfer>> finished;
    // Requests that could not even start.
    for (auto it = transfers_.begin(); it != transfers_.end();) {
        if (it->second->easy == nullptr) {
            finished.push_back(std::move(it->second));
            it = transfers_.erase(it);
        } else {
            ++it;
        }
    }
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        auto it = transfers_.find(msg->easy_handle);
        if (it == transfers_.end()) continue;
        auto transfer = std::move(it->second);
        transfers_.erase(it);
        const CURLcode code = msg->data.result;
        // Only a handle that is not in the multi is refused; this one is.
        (void)curl_multi_remove_handle(multi_, transfer->easy);
        if (code == CURLE_OK) {
            if (curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE,
                                  &transfer->response.status) != CURLE_OK)
                transfer->response.status = 0;
        } else {
            transfer->response.status = 0;
            // SMTP's reply code says whether to try again (4xx) or not (5xx).
            if (transfer->response.mail &&
                curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE,
                                  &transfer->response.status) != CURLE_OK)
                transfer->response.status = 0;
            transfer->response.error =
                transfer->error[0] != '\0' ? transfer->error : curl_easy_strerror(code);
        }
        finished.push_back(std::move(transfer));
    }
    for (auto& transfer : finished) transfer->done(std::move(transfer->response));
}

}  // namespace cerberus::notify
