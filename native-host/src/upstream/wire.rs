//! The HTTP client a Streamable HTTP link sends with: hyper-util's pooled client, driven directly.
//!
//! reqwest, which the link used before, spends about 32k instructions of its own on every request
//! (15 % of a proxied call, README "Lean and fast"), 12k of them in two URL parses its redirect layer
//! makes whatever the policy. The link needs none of what reqwest adds beyond what is below, so it
//! asks the same parts reqwest is built from:
//! - **proxies**: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` are read by hyper-util's
//!   matcher, the one reqwest reads them with. A link whose URL a proxy applies to sends through
//!   reqwest, which speaks to proxies (absolute-form requests, `CONNECT` tunnels, SOCKS); the
//!   decision is made once per link, as reqwest makes it per request from the same environment;
//! - **redirects**: tower-http's `FollowRedirect`, reqwest's own middleware, with reqwest's limit
//!   of 10; `Authorization`, `Cookie` and `Proxy-Authorization` are dropped on a hop to another
//!   origin; 307 and 308 send the same body again, 301, 302 and 303 turn a POST into a GET;
//! - TLS by rustls (ring) with webpki's roots, HTTP/2 by ALPN on `https`, a 10 s connect timeout,
//!   `TCP_NODELAY`, 64 idle connections kept per host: as the link's reqwest client was built.
//!
//! No timeout on a whole request (a tool may run for minutes; the engine has its own deadlines),
//! no retries of its own (a call is never sent twice; the link decides what may be re-sent; like
//! reqwest, hyper-util's pool sends a request again only when the idle connection it picked closed
//! before any of the request was written), no decompression or cookies (the link asked for neither).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tower::ServiceExt;
use tower_http::follow_redirect::policy::{self, FilterCredentials, Limited, PolicyExt};
use tower_http::follow_redirect::FollowRedirect;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A reply's body, whichever client read it.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
pub type Response = http::Response<Body>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IDLE_PER_HOST: usize = 64;
/// reqwest's default.
const MAX_REDIRECTS: usize = 10;

type Pool = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
type ResendBody = policy::CloneBodyFn<fn(&Full<Bytes>) -> Option<Full<Bytes>>>;
type Redirects = policy::And<policy::And<Limited, FilterCredentials>, ResendBody>;

fn resend(body: &Full<Bytes>) -> Option<Full<Bytes>> {
    Some(body.clone())
}

/// How one link sends.
#[derive(Clone)]
pub enum Client {
    /// Boxed: the client and its policy are 360 bytes, reqwest's handle 8.
    Direct(Box<FollowRedirect<Pool, Redirects>>),
    /// A proxy applies to the link's URL.
    Proxied(reqwest::Client),
}

/// Why a request got no reply.
#[derive(Debug)]
pub struct Error {
    /// No connection could be made: nothing was sent.
    pub connect: bool,
    text: String,
}

impl Error {
    /// A request that was not sent: `text` says why.
    pub fn refused(text: String) -> Error {
        Error { connect: false, text }
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

impl Client {
    /// The client for a link to `url`; reqwest with the environment's proxy where one applies.
    pub fn for_url(url: &str) -> Client {
        let proxied = url.parse::<http::Uri>().ok().is_some_and(|u| Matcher::from_system().intercept(&u).is_some());
        if proxied {
            let client = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .pool_max_idle_per_host(IDLE_PER_HOST)
                .build()
                .expect("tls backend");
            return Client::Proxied(client);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring supports rustls' default protocol versions")
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        type E = hyper_util::client::legacy::Error;
        let redirects = Limited::new(MAX_REDIRECTS)
            .and::<_, Full<Bytes>, E>(FilterCredentials::new())
            .and::<_, Full<Bytes>, E>(policy::clone_body_fn(resend as fn(&Full<Bytes>) -> Option<Full<Bytes>>));
        Client::Direct(Box::new(FollowRedirect::with_policy(pool, redirects)))
    }

    pub fn is_proxied(&self) -> bool {
        matches!(self, Client::Proxied(_))
    }

    /// Send one request and wait for the reply's head; the body is read by the caller.
    pub async fn send(&self, req: http::Request<Bytes>) -> Result<Response, Error> {
        match self {
            Client::Direct(svc) => {
                let resp = FollowRedirect::clone(svc)
                    .oneshot(req.map(Full::new))
                    .await
                    .map_err(|e| Error { connect: e.is_connect(), text: chain(&e) })?;
                Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync()))
            }
            Client::Proxied(client) => {
                let req = reqwest::Request::try_from(req.map(reqwest::Body::from))
                    .map_err(|e| Error { connect: false, text: chain(&e) })?;
                let resp = client
                    .execute(req)
                    .await
                    .map_err(|e| Error { connect: e.is_connect() || e.is_timeout(), text: chain(&e.without_url()) })?;
                Ok(http::Response::from(resp).map(|b| b.map_err(BoxError::from).boxed_unsync()))
            }
        }
    }
}

/// The whole body (empty if it broke off).
pub async fn bytes(resp: Response) -> Bytes {
    resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default()
}
