//! An incremental HTTP/1.1 request parser (RFC 9112): request line, header fields,
//! and a body of `Content-Length` bytes. What the HTTP listener needs and no more:
//! BOSH posts, WebSocket upgrades, metrics and health GETs. Bytes arrive in any
//! pieces; a request is returned once complete, and the bytes after it stay buffered
//! (the next request of a persistent connection, or WebSocket frames after an upgrade).

/// Limits that keep a client from making the server buffer without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request line plus header section, in bytes.
    pub max_head: usize,
    /// Largest body, in bytes.
    pub max_body: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// Most header fields in one request.
const MAX_HEADERS: usize = 100;

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, as sent (`GET`, `POST`, `OPTIONS`, ...).
    pub method: String,
    /// The request target (origin form: path and query).
    pub target: String,
    /// The minor version of HTTP/1.x.
    pub minor_version: u8,
    /// Header fields in order; names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header field `name` (case-insensitive), the first if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header field `name` lists `token` (comma-separated, case-insensitive),
    /// as `Connection: keep-alive, Upgrade` lists `upgrade`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The path: the target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The host named by the `Host` field, without a port, lower-case.
    pub fn host(&self) -> Option<String> {
        let h = self.header("host")?.trim();
        let name = if let Some(rest) = h.strip_prefix('[') {
            // An IPv6 literal: [::1]:5280.
            rest.split(']').next().unwrap_or("")
        } else {
            h.rsplit_once(':').map_or(h, |(name, _)| name)
        };
        Some(name.to_ascii_lowercase())
    }

    /// RFC 9112 §9.3: HTTP/1.1 connections persist unless `Connection: close`;
    /// HTTP/1.0 ones only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.header_has_token("connection", "keep-alive")
    }
}

/// Why a request cannot be served; each is answered with its status code, then the
/// connection closes (the framing of what follows is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// 400: the request line or a header field is malformed.
    #[error("malformed request")]
    BadRequest,
    /// 431: the request line and header section are over the limit.
    #[error("header section too large")]
    HeadTooLarge,
    /// 413: the body is over the limit.
    #[error("body too large")]
    BodyTooLarge,
    /// 501: a transfer coding (chunked) we do not take.
    #[error("transfer codings are not supported")]
    TransferCoding,
    /// 505: not HTTP/1.x.
    #[error("HTTP version not supported")]
    Version,
}

impl RequestError {
    /// The status code that answers it.
    pub fn status(self) -> u16 {
        match self {
            RequestError::BadRequest => 400,
            RequestError::HeadTooLarge => 431,
            RequestError::BodyTooLarge => 413,
            RequestError::TransferCoding => 501,
            RequestError::Version => 505,
        }
    }
}

/// The parser of one connection's requests.
#[derive(Debug, Default)]
pub struct RequestParser {
    buf: Vec<u8>,
    limits: RequestLimits,
    /// A parsed head waiting for its body: the request and the body length.
    head: Option<(Request, usize)>,
    /// Where the search for the end of the head resumes.
    scanned: usize,
}

impl RequestParser {
    /// A parser with `limits`.
    pub fn new(limits: RequestLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The bytes received after the last complete request (an upgraded
    /// connection's first frames), leaving the parser empty.
    pub fn take_rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
        std::mem::take(&mut self.buf)
    }

    /// The next complete request; `Ok(None)` when more bytes are needed.
    pub fn next_request(&mut self) -> Result<Option<Request>, RequestError> {
        if self.head.is_none() {
            // Blank lines before a request line are ignored (RFC 9112 §2.2).
            while self.buf.starts_with(b"\r\n") {
                self.buf.drain(..2);
            }
            let from = self.scanned.saturating_sub(3);
            let Some(end) = find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i) else {
                if self.buf.len() > self.limits.max_head {
                    return Err(RequestError::HeadTooLarge);
                }
                self.scanned = self.buf.len();
                return Ok(None);
            };
            if end + 4 > self.limits.max_head {
                return Err(RequestError::HeadTooLarge);
            }
            let head = parse_head(&self.buf[..end])?;
            self.buf.drain(..end + 4);
            self.scanned = 0;
            if head.header("transfer-encoding").is_some() {
                return Err(RequestError::TransferCoding);
            }
            let length = match head.header("content-length") {
                None => 0,
                Some(v) => v.trim().parse::<usize>().map_err(|_| RequestError::BadRequest)?,
            };
            if length > self.limits.max_body {
                return Err(RequestError::BodyTooLarge);
            }
            self.head = Some((head, length));
        }
        let length = self.head.as_ref().map_or(0, |(_, l)| *l);
        if self.buf.len() < length {
            return Ok(None);
        }
        let (mut request, _) = self.head.take().expect("head parsed above");
        request.body = self.buf.drain(..length).collect();
        Ok(Some(request))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// RFC 9110 §5.6.2: a token character.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_head(head: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::BadRequest)?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(RequestError::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::BadRequest);
    };
    if method.is_empty() || !method.bytes().all(is_tchar) || target.is_empty() {
        return Err(RequestError::BadRequest);
    }
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.starts_with("HTTP/") => return Err(RequestError::Version),
        _ => return Err(RequestError::BadRequest),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(RequestError::BadRequest)?;
        // RFC 9112 §5.1: no whitespace between the name and the colon; obsolete
        // line folding is refused (§5.2).
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(RequestError::BadRequest);
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(RequestError::BadRequest);
        }
        headers.push((name.to_string(), value.trim().to_string()));
        if headers.len() > MAX_HEADERS {
            return Err(RequestError::HeadTooLarge);
        }
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        minor_version,
        headers,
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], piece: usize) -> Result<Vec<Request>, RequestError> {
        let mut p = RequestParser::new(RequestLimits::default());
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            p.feed(chunk);
            while let Some(r) = p.next_request()? {
                out.push(r);
            }
        }
        Ok(out)
    }

    const TWO: &[u8] = b"POST /http-bind HTTP/1.1\r\nHost: localhost:5280\r\nContent-Type: text/xml\r\n\
        Content-Length: 7\r\n\r\n<body/>GET /metrics?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

    /// Two pipelined requests come out the same whatever the split.
    #[test]
    fn any_split_gives_the_same_requests() {
        let whole = parse_all(TWO, TWO.len()).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].method, "POST");
        assert_eq!(whole[0].path(), "/http-bind");
        assert_eq!(whole[0].host().as_deref(), Some("localhost"));
        assert_eq!(whole[0].body, b"<body/>");
        assert!(whole[0].keep_alive());
        assert_eq!(whole[1].path(), "/metrics");
        assert_eq!(whole[1].minor_version, 0);
        assert!(whole[1].keep_alive());
        for piece in 1..TWO.len() {
            assert_eq!(
                parse_all(TWO, piece).unwrap(),
                whole,
                "split into pieces of {piece}"
            );
        }
    }

    #[test]
    fn bad_requests_get_their_status() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        ];
        for (input, status) in cases {
            let err = parse_all(input, input.len()).unwrap_err();
            assert_eq!(err.status(), *status, "{}", String::from_utf8_lossy(input));
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert_eq!(
            parse_all(huge.as_bytes(), 100).unwrap_err(),
            RequestError::HeadTooLarge
        );
    }

    #[test]
    fn host_forms_and_connection_tokens() {
        let r = parse_all(
            b"GET / HTTP/1.1\r\nHost: [::1]:5280\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            64,
        )
        .unwrap()
        .remove(0);
        assert_eq!(r.host().as_deref(), Some("::1"));
        assert!(r.header_has_token("Connection", "upgrade"));
        let r = parse_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 64)
            .unwrap()
            .remove(0);
        assert!(!r.keep_alive());
    }

    /// What follows an upgrade request stays for the WebSocket layer.
    #[test]
    fn bytes_after_a_request_are_kept() {
        let mut p = RequestParser::new(RequestLimits::default());
        p.feed(b"GET /ws HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85");
        assert!(p.next_request().unwrap().is_some());
        assert_eq!(p.take_rest(), b"\x81\x85");
    }
}
