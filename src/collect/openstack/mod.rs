//! OpenStack's APIs as a source of what a port should look like: credentials the OpenStack way
//! (`clouds`), a Keystone token reused from a private cache (`keystone`), and the Neutron
//! calls the walks need (`neutron`). HTTPS goes through rustls; every call is bounded by the
//! walk's `--timeout`; no secret reaches a message, a report or the captured facts.
//!
//! [`lookup`] is the edge the pipelines use: it runs on a thread of its own (its own
//! single-threaded runtime) while the host is read, and answers with [`NeutronFacts`].

pub mod clouds;
pub mod keystone;
pub mod neutron;
pub mod yaml;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use clouds::Cloud;
use keystone::Token;

/// The most a Keystone or Neutron answer may hold.
pub const MAX_BODY: usize = 8 << 20;

/// What a call can end in, besides an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    NotFound,
    /// 401: the token is not (or no longer) accepted.
    Unauthorized(String),
    Other(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        match e {
            ApiError::NotFound => Error::unknown("Neutron answered 404 Not Found"),
            ApiError::Unauthorized(m) | ApiError::Other(m) => Error::unknown(m),
        }
    }
}

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The cache (no Keystone call).
    Cached,
    /// A new token from Keystone.
    New,
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `msg` with every secret replaced by `***`.
pub fn redact(msg: &str, secrets: &[&str]) -> String {
    let mut m = msg.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        m = m.replace(s, "***");
    }
    m
}

/// An authenticated session with Neutron.
pub struct Session {
    http: reqwest::Client,
    token: Token,
    pub endpoint: String,
    pub token_source: TokenSource,
    timeout: Duration,
    calls: AtomicU32,
    secrets: Vec<String>,
    /// Why the token was not cached or not read from the cache (for the report).
    pub cache_note: Option<String>,
}

fn client(c: &Cloud, timeout: Duration) -> Result<reqwest::Client> {
    let bad = |what: &str, e: String| {
        Error::usage(format!(
            "cloud '{}': {what}: {e} (fix it in {})",
            c.name, c.origin
        ))
    };
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("vmpath/", env!("CARGO_PKG_VERSION")));
    if !c.verify {
        b = b.danger_accept_invalid_certs(true);
    }
    let read = |p: &PathBuf| {
        crate::collect::files::read_text(p, 1 << 20)
            .map_err(|e| bad(&format!("cannot read {}", p.display()), e.to_string()))
    };
    if let Some(ca) = &c.cacert {
        let pem = read(ca)?;
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| bad(&format!("cacert {}", ca.display()), e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(
                &format!("cacert {}", ca.display()),
                "no certificate in it".into(),
            ));
        }
        b = b.tls_certs_only(certs);
    }
    if let Some(cert) = &c.cert {
        let mut pem = read(cert)?;
        if let Some(k) = &c.key {
            pem.push('\n');
            pem.push_str(&read(k)?);
        }
        let id = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(|e| bad(&format!("cert {}", cert.display()), e.to_string()))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| bad("the HTTP client", e.to_string()))
}

/// Read a bounded body.
async fn body(mut r: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A short, printable piece of an error answer.
fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s: String = s.chars().filter(|c| !c.is_control()).take(200).collect();
    s
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A new token from Keystone.
async fn authenticate(http: &reqwest::Client, c: &Cloud) -> Result<Token> {
    let url = keystone::tokens_url(&c.auth_url);
    let secrets = c.secrets();
    let fail = |m: String| Error::unknown(redact(&m, &secrets));
    let started = std::time::Instant::now();
    let r = http
        .post(&url)
        .header("Content-Type", "application/json")
        .body(keystone::auth_request(c).to_string())
        .send()
        .await
        .map_err(|e| fail(format!("Keystone {url}: {}", error_chain(&e))))?;
    let status = r.status();
    let subject = r
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let b = body(r)
        .await
        .map_err(|e| fail(format!("Keystone {url}: {e}")))?;
    if !status.is_success() {
        return Err(fail(format!(
            "Keystone {url} refused the {} credentials of cloud '{}': {status} {}",
            c.auth_type.name(),
            c.name,
            snippet(&b)
        )));
    }
    if std::env::var_os("VMPATH_TIMINGS").is_some() {
        eprintln!(
            "vmpath timing: Keystone POST {url}: {status} in {} ms",
            started.elapsed().as_millis()
        );
    }
    let v: Value = serde_json::from_slice(&b)
        .map_err(|e| fail(format!("Keystone {url}: the answer is not JSON: {e}")))?;
    keystone::parse_token(&subject, &v).map_err(|e| fail(format!("Keystone {url}: {e}")))
}

/// reqwest's error with its causes (connection refused, certificate errors).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

impl Session {
    /// Authenticate (from the cache unless `fresh`) and find the network endpoint.
    pub async fn open(
        c: &Cloud,
        timeout: Duration,
        cache: Option<&std::path::Path>,
        fresh: bool,
    ) -> Result<Session> {
        let http = client(c, timeout)?;
        let file = cache.map(|d| keystone::cache_file(d, c));
        let mut cache_note = None;
        let cached = match (&file, fresh) {
            (Some(f), false) => match keystone::read_cache(f, c, now()) {
                Ok(t) => Some(t),
                Err(e) => {
                    cache_note = Some(e);
                    None
                }
            },
            _ => None,
        };
        let (token, token_source) = match cached {
            Some(t) => (t, TokenSource::Cached),
            None => {
                let t = authenticate(&http, c).await?;
                if let Some(f) = &file {
                    if let Err(e) = keystone::write_cache(f, c, &t) {
                        cache_note = Some(e);
                    }
                }
                (t, TokenSource::New)
            }
        };
        let endpoint = keystone::network_endpoint(c, &token.endpoints)
            .map_err(|e| Error::unknown(format!("cloud '{}': {e}", c.name)))?;
        Ok(Session {
            http,
            token,
            endpoint,
            token_source,
            timeout,
            calls: AtomicU32::new(0),
            secrets: c.secrets().into_iter().map(str::to_string).collect(),
            cache_note,
        })
    }

    /// The Neutron calls made so far.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    /// `GET endpoint + path?query` → the JSON answer.
    pub async fn get(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> std::result::Result<Value, ApiError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let url = format!("{}{path}", self.endpoint);
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .map(String::as_str)
            .chain([self.token.value.expose()])
            .collect();
        let fail = |m: String| ApiError::Other(redact(&m, &secrets));
        let mut tok = reqwest::header::HeaderValue::from_str(self.token.value.expose())
            .map_err(|_| fail("the token is not a valid header value".into()))?;
        tok.set_sensitive(true);
        let r = self
            .http
            .get(&url)
            .query(query)
            .header("X-Auth-Token", tok)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    fail(format!(
                        "Neutron {url}: no answer within {:?}",
                        self.timeout
                    ))
                } else {
                    fail(format!("Neutron {url}: {}", error_chain(&e)))
                }
            })?;
        let status = r.status();
        let b = body(r)
            .await
            .map_err(|e| fail(format!("Neutron {url}: {e}")))?;
        if std::env::var_os("VMPATH_TIMINGS").is_some() {
            eprintln!(
                "vmpath timing: Neutron GET {path}: {status} {} bytes in {} ms",
                b.len(),
                started.elapsed().as_millis()
            );
        }
        match status.as_u16() {
            200 => serde_json::from_slice(&b)
                .map_err(|e| fail(format!("Neutron {url}: the answer is not JSON: {e}"))),
            404 => Err(ApiError::NotFound),
            401 => Err(ApiError::Unauthorized(redact(
                &format!("Neutron {url}: 401: the token was refused"),
                &secrets,
            ))),
            403 => Err(fail(format!(
                "Neutron {url}: 403 Forbidden: the credentials may not read this (binding:* and agents need an admin or service role)"
            ))),
            _ => Err(fail(format!("Neutron {url}: {status} {}", snippet(&b)))),
        }
    }
}

/// What vmpath asked Neutron for one walk, and what it answered (serializes into the captured
/// facts; no secret in it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeutronFacts {
    pub cloud: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSource>,
    pub keystone_calls: u32,
    pub api_calls: u32,
    /// The ports the query names, with their records; an error when the API could not be
    /// reached or refused.
    pub ports: Result<Vec<neutron::PortRecords>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_note: Option<String>,
    pub elapsed_ms: u64,
}

impl NeutronFacts {
    /// Nothing asked yet (or nothing answered: `ports` says why).
    pub fn new(cloud: &str, ports: Result<Vec<neutron::PortRecords>>, elapsed_ms: u64) -> Self {
        NeutronFacts {
            cloud: cloud.to_string(),
            endpoint: String::new(),
            token: None,
            keystone_calls: 0,
            api_calls: 0,
            ports,
            cache_note: None,
            elapsed_ms,
        }
    }
}

/// Where the token cache lives for this process.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if env("VMPATH_TOKEN_CACHE").is_some_and(|v| v.as_os_str() == "off") {
        return None;
    }
    keystone::cache_dir(env("XDG_RUNTIME_DIR").as_deref(), env("HOME").as_deref())
}

#[allow(clippy::too_many_arguments)]
async fn lookup_once(
    c: &Cloud,
    q: &neutron::PortQuery,
    network_hint: Option<&str>,
    overlay: bool,
    timeout: Duration,
    cache: Option<&std::path::Path>,
    fresh: bool,
    out: &mut NeutronFacts,
) -> std::result::Result<Vec<neutron::PortRecords>, ApiError> {
    let s = Session::open(c, timeout, cache, fresh)
        .await
        .map_err(|e| ApiError::Other(e.to_string()))?;
    out.endpoint = s.endpoint.clone();
    out.token = Some(s.token_source);
    if s.token_source == TokenSource::New {
        out.keystone_calls += 1;
    }
    if s.cache_note.is_some() {
        out.cache_note = s.cache_note.clone();
    }
    // With the port's network known (OVSDB's net_uuid on a compute node), its parts are asked
    // together with the port: two rounds of calls instead of three.
    // A new token is validated by each Neutron server worker on its first use (against
    // Keystone): asked in parallel, every call would pay that at once. Then the port is asked
    // alone first.
    let network_hint = network_hint.filter(|_| s.token_source == TokenSource::Cached);
    let (ports, early) = match network_hint {
        Some(net) => {
            let (p, parts) = tokio::join!(
                neutron::find_ports_raw(&s, q),
                neutron::net_parts(&s, net, overlay)
            );
            (p, Some((net, parts)))
        }
        None => (neutron::find_ports_raw(&s, q).await, None),
    };
    let ports = match ports {
        Ok(p) => p,
        Err(e) => {
            out.api_calls += s.calls();
            return Err(e);
        }
    };
    let mut recs = Vec::new();
    let mut early = early;
    for p in ports.into_iter().take(8) {
        let r = match early.take() {
            Some((net, parts)) if net == p.network_id => neutron::assemble(&s, p, parts).await,
            _ => neutron::records(&s, p, overlay).await,
        };
        recs.push(r);
    }
    out.api_calls += s.calls();
    Ok(recs)
}

/// Ask Neutron for the port(s) `q` names and their records, bounded by `timeout` per call. A
/// cached token that Neutron refuses is replaced once.
pub async fn lookup(
    c: &Cloud,
    q: &neutron::PortQuery,
    network_hint: Option<&str>,
    overlay: bool,
    timeout: Duration,
    cache: Option<&std::path::Path>,
) -> NeutronFacts {
    let started = std::time::Instant::now();
    let mut out = NeutronFacts::new(&c.name, Ok(Vec::new()), 0);
    let mut r = lookup_once(c, q, network_hint, overlay, timeout, cache, false, &mut out).await;
    if matches!(r, Err(ApiError::Unauthorized(_))) && out.token == Some(TokenSource::Cached) {
        r = lookup_once(c, q, network_hint, overlay, timeout, cache, true, &mut out).await;
    }
    out.ports = r.map_err(|e| match e {
        ApiError::NotFound => Error::unknown("Neutron answered 404 for the ports list"),
        ApiError::Unauthorized(m) => Error::unknown(format!(
            "{m} (check the cloud's credentials and that the user has a role on the project)"
        )),
        ApiError::Other(m) => Error::unknown(m),
    });
    out.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    out
}

/// The ports `q` names, and nothing else (one Keystone call at most, one or two Neutron calls:
/// an id that names no port is tried as an instance's `device_id`); bounded by twice `timeout`.
pub fn find(c: &Cloud, q: &neutron::PortQuery, timeout: Duration) -> Result<Vec<neutron::Port>> {
    let cache = default_cache_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::unknown(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let work = async {
            let s = Session::open(c, timeout, cache.as_deref(), false).await?;
            let found = neutron::find_ports_raw(&s, q).await.map_err(Error::from)?;
            match (found.is_empty(), q) {
                (true, neutron::PortQuery::Id(id)) => {
                    neutron::find_ports_raw(&s, &neutron::PortQuery::Device(id.clone()))
                        .await
                        .map_err(Error::from)
                }
                _ => Ok(found),
            }
        };
        tokio::time::timeout(timeout.saturating_mul(2), work)
            .await
            .unwrap_or_else(|_| {
                Err(Error::unknown(format!(
                    "Keystone and Neutron did not answer within {:?}",
                    timeout.saturating_mul(2)
                )))
            })
    })
}

/// What Neutron says of the routers of a gateway node: each router's L3 agents (`ha_state` per
/// host), for the `router.neutron` check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouterAgents {
    pub cloud: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenSource>,
    pub keystone_calls: u32,
    pub api_calls: u32,
    /// Per router id; an error for all when Keystone or Neutron could not be reached.
    pub agents: Result<std::collections::BTreeMap<String, Result<Vec<neutron::L3Agent>>>>,
    pub elapsed_ms: u64,
}

/// The most routers whose agents one run asks for (one call each, eight at a time).
pub const MAX_ROUTERS_ASKED: usize = 64;

/// Each router's L3 agents, on a thread of its own; join it for the answer.
pub fn spawn_router_agents(
    c: Cloud,
    routers: Vec<String>,
    timeout: Duration,
) -> std::thread::JoinHandle<RouterAgents> {
    use futures_util::StreamExt;
    let cache = default_cache_dir();
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let mut out = RouterAgents {
            cloud: c.name.clone(),
            endpoint: String::new(),
            token: None,
            keystone_calls: 0,
            api_calls: 0,
            agents: Ok(Default::default()),
            elapsed_ms: 0,
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                out.agents = Err(Error::unknown(format!(
                    "cannot start the async runtime: {e}"
                )));
                return out;
            }
        };
        let work = async {
            let s = Session::open(&c, timeout, cache.as_deref(), false).await?;
            out.endpoint = s.endpoint.clone();
            out.token = Some(s.token_source);
            out.keystone_calls = u32::from(s.token_source == TokenSource::New);
            let answers: Vec<(String, Result<Vec<neutron::L3Agent>>)> =
                futures_util::stream::iter(routers.iter().take(MAX_ROUTERS_ASKED).cloned())
                    .map(|r| {
                        let s = &s;
                        async move {
                            let path = format!("/v2.0/routers/{}/l3-agents", path_segment(&r));
                            let a = s.get(&path, &[]).await.map_err(Error::from).and_then(|b| {
                                neutron::parse_list::<neutron::L3Agent>(&b, "agents")
                            });
                            (r, a)
                        }
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
            out.api_calls = s.calls();
            Ok::<_, Error>(answers.into_iter().collect())
        };
        let limit = timeout.saturating_mul(2);
        out.agents = rt.block_on(async {
            tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(Error::unknown(format!(
                    "Keystone and Neutron did not answer within {limit:?}"
                )))
            })
        });
        out.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        out
    })
}

/// [`lookup`] on a thread of its own (its own single-threaded runtime), so the host is read
/// meanwhile; join it for the answer.
pub fn spawn_lookup(
    c: Cloud,
    q: neutron::PortQuery,
    network_hint: Option<String>,
    overlay: bool,
    timeout: Duration,
) -> std::thread::JoinHandle<NeutronFacts> {
    let cache = default_cache_dir();
    std::thread::spawn(move || {
        let name = c.name.clone();
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            // Each call is bounded by `timeout`; the lookup (Keystone, then up to three rounds of
            // calls) by twice that.
            Ok(rt) => rt.block_on(async {
                match tokio::time::timeout(
                    timeout.saturating_mul(2),
                    lookup(
                        &c,
                        &q,
                        network_hint.as_deref(),
                        overlay,
                        timeout,
                        cache.as_deref(),
                    ),
                )
                .await
                {
                    Ok(n) => n,
                    Err(_) => NeutronFacts::new(
                        &c.name,
                        Err(Error::unknown(format!(
                            "Keystone and Neutron did not answer within {:?}",
                            timeout.saturating_mul(2)
                        ))),
                        u64::try_from(timeout.saturating_mul(2).as_millis()).unwrap_or(u64::MAX),
                    ),
                }
            }),
            Err(e) => NeutronFacts::new(
                &name,
                Err(Error::unknown(format!(
                    "cannot start the async runtime: {e}"
                ))),
                0,
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_redaction() {
        assert_eq!(path_segment("5d2f8a3c-1b4e"), "5d2f8a3c-1b4e");
        assert_eq!(path_segment("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(
            redact("bad password hunter2!", &["hunter2", ""]),
            "bad password ***!"
        );
    }
}
