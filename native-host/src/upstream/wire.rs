//! The gateway's one HTTP client: hyper-util's pooled client, driven directly. Every HTTP request
//! the gateway makes goes out here: Streamable HTTP and legacy SSE upstreams, the issuer's JWKS,
//! OAuth tokens for upstreams, sampling providers.
//!
//! reqwest, which these used before, spends about 32k instructions of its own on every request
//! (15 % of a proxied call, README "Lean and fast"), 12k of them in two URL parses its redirect layer
//! makes whatever the policy, and was 311 KiB of the binary's code. None of what it adds beyond
//! what is below is asked for, so the client is built from the parts reqwest is built from:
//! - **proxies**: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their lower-case
//!   forms) are read once by hyper-util's matcher, the one reqwest reads them with, and decided per
//!   destination as reqwest decides: an `http` URL is sent to the proxy in absolute form, an
//!   `https` URL through a `CONNECT` tunnel (hyper-util's `Tunnel`) with TLS to the destination
//!   inside it; credentials in the proxy URL go as `Proxy-Authorization: Basic`. The proxy itself
//!   may be `http` or `https`; SOCKS proxies are refused by name (reqwest was built without them);
//! - **redirects** (where the caller follows them): tower-http's `FollowRedirect`, reqwest's own
//!   middleware, with reqwest's limit of 10; `Authorization`, `Cookie` and `Proxy-Authorization`
//!   are dropped on a hop to another origin (the proxy's own credential is added again below the
//!   redirects, on every hop); 307 and 308 send the same body again, 301, 302 and 303 turn a POST
//!   into a GET;
//! - TLS by rustls (ring) with webpki's roots, HTTP/2 by ALPN on `https`, a 10 s connect timeout,
//!   `TCP_NODELAY`, 64 idle connections kept per host.
//!
//! No timeout on a whole request in [`Client::send`] (a tool may run for minutes; the engine has
//! its own deadlines; [`Client::fetch`] takes one), no retries of its own (a call is never sent
//! twice; the link decides what may be re-sent; like reqwest, hyper-util's pool sends a request
//! again only when the idle connection it picked closed before any of the request was written), no
//! decompression or cookies (no caller asks for either).

use bytes::Bytes;
use http::header::PROXY_AUTHORIZATION;
use http::uri::Scheme;
use http::Uri;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Service, ServiceExt};
use tower_http::follow_redirect::policy::{self, FilterCredentials, Limited as Hops, PolicyExt};
use tower_http::follow_redirect::FollowRedirect;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Response = http::Response<Incoming>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_PER_HOST: usize = 64;
/// reqwest's default.
const MAX_REDIRECTS: usize = 10;
/// The environment variables a proxy is named in (hyper-util's matcher reads them).
const PROXY_VARS: [&str; 6] = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

type Pool = hyper_util::client::legacy::Client<Connector, Full<Bytes>>;
type ResendBody = policy::CloneBodyFn<fn(&Full<Bytes>) -> Option<Full<Bytes>>>;
type Redirects = policy::And<policy::And<Hops, FilterCredentials>, ResendBody>;

fn resend(body: &Full<Bytes>) -> Option<Full<Bytes>> {
    Some(body.clone())
}

fn redirects() -> Redirects {
    type E = hyper_util::client::legacy::Error;
    Hops::new(MAX_REDIRECTS)
        .and::<_, Full<Bytes>, E>(FilterCredentials::new())
        .and::<_, Full<Bytes>, E>(policy::clone_body_fn(resend as fn(&Full<Bytes>) -> Option<Full<Bytes>>))
}

/// A pooled client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    hop: Hop,
    follow: bool,
}

/// Why a request got no (whole) reply.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No connection could be made (to the destination or to its proxy): nothing was sent.
    Connect,
    /// [`Client::fetch`]'s deadline passed.
    Timeout,
    /// Anything else: the request may have arrived (unless it was [`Error::refused`] before it went).
    Failed,
}

impl Error {
    /// A request that was not sent: `text` says why.
    pub fn refused(text: String) -> Error {
        Error { kind: Kind::Failed, text }
    }

    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The error and its causes, as one line ("client error (Connect): tcp connect error: Connection
/// refused (os error 111)"): hyper-util's own text names only the kind.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn failed(e: hyper_util::client::legacy::Error) -> Error {
    Error { kind: if e.is_connect() { Kind::Connect } else { Kind::Failed }, text: chain(&e) }
}

impl Client {
    /// A client that follows redirects (upstream links).
    pub fn new() -> Client {
        Client { hop: Hop::new(), follow: true }
    }

    /// A client that never follows a redirect: a 3xx is the answer (the authorization server's
    /// documents, token endpoints: a credential or a key set must come from where it was asked).
    pub fn not_following() -> Client {
        Client { hop: Hop::new(), follow: false }
    }

    /// The proxy a request to `uri` goes through, if the environment names one for it.
    pub fn proxy_for(&self, uri: &Uri) -> Option<Uri> {
        self.hop.proxies.as_ref()?.intercept(uri).map(|i| i.uri().clone())
    }

    /// Send one request and wait for the reply's head; the body is read by the caller.
    pub async fn send(&self, req: http::Request<Bytes>) -> Result<Response, Error> {
        let req = req.map(Full::new);
        if self.follow {
            FollowRedirect::with_policy(self.hop.clone(), redirects()).oneshot(req).await.map_err(failed)
        } else {
            self.hop.clone().oneshot(req).await.map_err(failed)
        }
    }

    /// Send one request and read its whole reply, of at most `limit` bytes, within `deadline`.
    pub async fn fetch(
        &self,
        req: http::Request<Bytes>,
        limit: usize,
        deadline: Duration,
    ) -> Result<(http::response::Parts, Bytes), Error> {
        let whole = async {
            let (head, body) = self.send(req).await?.into_parts();
            match Limited::new(body, limit).collect().await {
                Ok(b) => Ok((head, b.to_bytes())),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(Error { kind: Kind::Failed, text: format!("the answer is over {limit} bytes") })
                }
                Err(e) => Err(Error { kind: Kind::Failed, text: format!("the answer was cut off: {}", chain(&*e)) }),
            }
        };
        match tokio::time::timeout(deadline, whole).await {
            Ok(r) => r,
            Err(_) => Err(Error { kind: Kind::Timeout, text: format!("no answer in {} s", deadline.as_secs()) }),
        }
    }

    /// Whether a TCP connection to the first hop toward `uri` (its proxy, or its own host and
    /// port) can be made now.
    pub async fn reachable(&self, uri: &Uri) -> bool {
        let first = self.proxy_for(uri).unwrap_or_else(|| uri.clone());
        let Some(host) = first.host() else { return false };
        let https = first.scheme() == Some(&Scheme::HTTPS);
        let port = first.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']'));
        matches!(tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
    }
}

/// The whole body (empty if it broke off).
pub async fn bytes(resp: Response) -> Bytes {
    resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default()
}

/// One hop of a request, below the redirects: the proxy's credential for a request it forwards.
#[derive(Clone)]
struct Hop {
    pool: Pool,
    proxies: Option<Arc<Matcher>>,
}

impl Hop {
    fn new() -> Hop {
        let named = PROXY_VARS.iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        Hop::with_proxies(named.then(|| Arc::new(Matcher::from_system())))
    }

    fn with_proxies(proxies: Option<Arc<Matcher>>) -> Hop {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let tls = |alpn: &[&[u8]]| {
            let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls' default protocol versions")
                .with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        };
        let host_tls = tls(&[b"h2", b"http/1.1"]);
        let connector = Connector {
            to_host: HttpsConnector::from((http.clone(), host_tls.clone())),
            host_tls,
            to_proxy: HttpsConnector::from((http, tls(&[b"http/1.1"]))),
            proxies: proxies.clone(),
        };
        let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .timer(hyper_util::rt::TokioTimer::new())
            .build(connector);
        Hop { pool, proxies }
    }
}

impl Service<http::Request<Full<Bytes>>> for Hop {
    type Response = Response;
    type Error = hyper_util::client::legacy::Error;
    type Future = hyper_util::client::legacy::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.pool.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Full<Bytes>>) -> Self::Future {
        if let Some(m) = &self.proxies {
            if req.uri().scheme() == Some(&Scheme::HTTP) {
                if let Some(auth) = m.intercept(req.uri()).as_ref().and_then(|i| i.basic_auth()) {
                    req.headers_mut().insert(PROXY_AUTHORIZATION, auth.clone());
                }
            }
        }
        self.pool.call(req)
    }
}

/// Makes the pool's connections: straight to the host, or by the proxy the environment names.
#[derive(Clone)]
struct Connector {
    /// TLS offering HTTP/2 and HTTP/1.1, for a destination.
    to_host: HttpsConnector<HttpConnector>,
    host_tls: Arc<rustls::ClientConfig>,
    /// TLS offering HTTP/1.1 only, for an `https` proxy (a tunnel is asked for in HTTP/1.1).
    to_proxy: HttpsConnector<HttpConnector>,
    proxies: Option<Arc<Matcher>>,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connecting {
        let Some(proxy) = self.proxies.as_ref().and_then(|m| m.intercept(&dst)) else {
            let connecting = self.to_host.call(dst);
            return Box::pin(async move { Ok(Conn { io: Box::new(connecting.await?), forwarded: false }) });
        };
        let at = proxy.uri().clone();
        if !matches!(at.scheme_str(), Some("http" | "https")) {
            let text = format!("the proxy {at} is not supported: only http and https proxies are");
            return Box::pin(async move { Err(text.into()) });
        }
        if dst.scheme() == Some(&Scheme::HTTP) {
            // Forwarded: the request goes to the proxy in absolute form.
            let connecting = self.to_proxy.call(at);
            return Box::pin(async move { Ok(Conn { io: Box::new(connecting.await?), forwarded: true }) });
        }
        let mut tunnel = Tunnel::new(at, self.to_proxy.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        // TLS to the destination, inside the tunnel.
        let connecting = HttpsConnector::from((tunnel, self.host_tls.clone())).call(dst);
        Box::pin(async move { Ok(Conn { io: Box::new(connecting.await?), forwarded: false }) })
    }
}

/// Anything a connection can be made of (plain or TLS, direct or tunnelled).
trait Io: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin {}
impl<T: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin> Io for T {}

/// One connection of the pool.
pub struct Conn {
    io: Box<dyn Io>,
    /// Requests on it go to a proxy that forwards them (absolute-form targets).
    forwarded: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarded)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn through(proxy: &str) -> Client {
        let m = Matcher::builder().all(proxy.to_string()).build();
        Client { hop: Hop::with_proxies(Some(Arc::new(m))), follow: true }
    }

    fn post(uri: &str) -> http::Request<Bytes> {
        let mut req = http::Request::new(Bytes::from_static(b"{}"));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri.parse().expect("uri");
        req
    }

    #[tokio::test]
    async fn an_http_url_goes_to_the_proxy_in_absolute_form_with_its_credentials() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let proxy = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "the request ended early");
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.expect("write");
            String::from_utf8(got).expect("text")
        });
        let c = through(&format!("http://edge:s3cret@127.0.0.1:{port}"));
        let resp = c.send(post("http://upstream.invalid:8080/mcp")).await.expect("the proxy answered");
        assert_eq!(resp.status(), 204);
        let head = proxy.await.expect("proxy task").to_ascii_lowercase();
        assert!(head.starts_with("post http://upstream.invalid:8080/mcp http/1.1\r\n"), "{head}");
        // base64("edge:s3cret")
        assert!(head.contains("\r\nproxy-authorization: basic zwrnztpzm2nyzxq=\r\n"), "{head}");
        assert!(head.contains("\r\nhost: upstream.invalid:8080\r\n"), "{head}");
    }

    #[tokio::test]
    async fn an_https_url_asks_the_proxy_for_a_tunnel_to_its_host_and_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let proxy = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.expect("read");
            // Refuse the tunnel: nothing reaches the destination.
            s.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n").await.expect("write");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let c = through(&format!("http://127.0.0.1:{port}"));
        let e = c.send(post("https://upstream.invalid:8443/mcp")).await.expect_err("the tunnel was refused");
        assert!(e.is_connect(), "a refused tunnel sent nothing: {e}");
        let head = proxy.await.expect("proxy task");
        assert!(head.starts_with("CONNECT upstream.invalid:8443 HTTP/1.1\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_socks_proxy_is_refused_by_name_and_nothing_is_sent() {
        let c = through("socks5://127.0.0.1:9");
        let e = c.send(post("http://upstream.invalid/mcp")).await.expect_err("refused");
        assert!(e.is_connect(), "{e}");
        assert!(e.to_string().contains("only http and https proxies are"), "{e}");
    }

    #[tokio::test]
    async fn no_proxy_sends_straight_to_the_host() {
        let c = Client { hop: Hop::with_proxies(None), follow: false };
        let e = c.send(post("http://127.0.0.1:9/mcp")).await.expect_err("nothing listens on port 9");
        assert!(e.is_connect(), "{e}");
        assert_eq!(c.proxy_for(&"http://127.0.0.1:9/".parse().expect("uri")), None);
    }
}
