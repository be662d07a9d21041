//! Keystone v3: the token request for a cloud's credentials ([`auth_request`]), the answer
//! ([`parse_token`]: the token from `X-Subject-Token`, `expires_at`, the catalog), the network
//! endpoint from the catalog ([`network_endpoint`]), and the token cache: one file per cloud
//! and user (mode 0600, in a 0700 directory under `$XDG_RUNTIME_DIR/vmpath` or
//! `~/.cache/vmpath`), reused until shortly before `expires_at`, written to a temporary file
//! and renamed into place, never through a symlink.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::clouds::{AuthType, Cloud, Secret};

/// A cached token is not used when it expires within this many seconds.
pub const EXPIRY_MARGIN_S: i64 = 300;

/// One endpoint of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub service_type: String,
    pub interface: String,
    #[serde(default)]
    pub region: String,
    pub url: String,
}

/// A token and what came with it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Token {
    #[serde(with = "secret_text")]
    pub value: Secret,
    /// Seconds since the epoch.
    pub expires_at: i64,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub project_id: String,
    /// The catalog's network (and identity) endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &self.value)
            .field("expires_at", &self.expires_at)
            .field("user_id", &self.user_id)
            .field("project_id", &self.project_id)
            .finish()
    }
}

/// The token's text in the cache file only (0600): never in reports, facts or JSON output.
mod secret_text {
    use super::Secret;
    pub fn serialize<S: serde::Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.expose())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(Secret::new(s))
    }
}

/// The URL of `POST /v3/auth/tokens` for a cloud's auth_url (with or without `/v3`).
pub fn tokens_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

fn domain(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(i), _) => json!({ "id": i }),
        (None, Some(n)) => json!({ "name": n }),
        // Keystone's default domain, as the clients assume when none is named.
        (None, None) => json!({ "id": "default" }),
    }
}

fn user(c: &Cloud) -> Value {
    match &c.user_id {
        Some(id) => json!({ "id": id }),
        None => json!({
            "name": c.username.clone().unwrap_or_default(),
            "domain": domain(&c.user_domain_id, &c.user_domain_name),
        }),
    }
}

fn scope(c: &Cloud) -> Option<Value> {
    if let Some(id) = &c.project_id {
        return Some(json!({ "project": { "id": id } }));
    }
    c.project_name.as_ref().map(|n| {
        json!({ "project": {
            "name": n,
            "domain": domain(&c.project_domain_id, &c.project_domain_name),
        }})
    })
}

/// The body of `POST /v3/auth/tokens` (it holds the secret: never print it).
pub fn auth_request(c: &Cloud) -> Value {
    let secret = |s: &Option<Secret>| {
        s.as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default()
    };
    let identity = match c.auth_type {
        AuthType::Password => {
            let mut u = user(c);
            u["password"] = Value::String(secret(&c.password));
            json!({ "methods": ["password"], "password": { "user": u } })
        }
        AuthType::ApplicationCredential => {
            let mut ac = match &c.application_credential_id {
                Some(id) => json!({ "id": id }),
                None => json!({
                    "name": c.application_credential_name.clone().unwrap_or_default(),
                    "user": user(c),
                }),
            };
            ac["secret"] = Value::String(secret(&c.application_credential_secret));
            json!({ "methods": ["application_credential"], "application_credential": ac })
        }
        AuthType::Token => json!({ "methods": ["token"], "token": { "id": secret(&c.token) } }),
    };
    let mut auth = json!({ "identity": identity });
    // An application credential carries its own scope.
    if c.auth_type != AuthType::ApplicationCredential {
        if let Some(s) = scope(c) {
            auth["scope"] = s;
        }
    }
    json!({ "auth": auth })
}

/// Seconds since the epoch of an ISO 8601 / RFC 3339 time as Keystone writes it
/// (`2026-12-03T21:05:00.000000Z`, or with an offset).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "Z"),
    };
    let mut t = time.splitn(3, ':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next().unwrap_or("0").split('.').next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let off = match offset.chars().next() {
        Some('Z' | 'z') => 0,
        Some(sign @ ('+' | '-')) => {
            let o = &offset[1..];
            let (oh, om) = o
                .split_once(':')
                .unwrap_or((o.get(..2)?, o.get(2..).unwrap_or("0")));
            let v = oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().unwrap_or(0) * 60;
            if sign == '+' {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - off)
}

/// The token from Keystone's answer: `subject` is the `X-Subject-Token` header, `body` the
/// JSON. Only the network and identity endpoints of the catalog are kept.
pub fn parse_token(subject: &str, body: &Value) -> Result<Token, String> {
    let t = body
        .get("token")
        .ok_or("Keystone's answer has no `token`")?;
    let exp = t
        .get("expires_at")
        .and_then(Value::as_str)
        .ok_or("Keystone's token has no expires_at")?;
    let expires_at = parse_time(exp).ok_or_else(|| format!("expires_at '{exp}' is not a time"))?;
    if subject.trim().is_empty() {
        return Err("Keystone's answer has no X-Subject-Token header".into());
    }
    let mut endpoints = Vec::new();
    for svc in t
        .get("catalog")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let st = svc.get("type").and_then(Value::as_str).unwrap_or_default();
        if st != "network" && st != "identity" {
            continue;
        }
        for e in svc
            .get("endpoints")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let region = if s("region_id").is_empty() {
                s("region")
            } else {
                s("region_id")
            };
            endpoints.push(Endpoint {
                service_type: st.to_string(),
                interface: s("interface"),
                region,
                url: s("url").trim_end_matches('/').to_string(),
            });
        }
    }
    let id = |k: &str| {
        t.get(k)
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(Token {
        value: Secret::new(subject.trim()),
        expires_at,
        user_id: id("user"),
        project_id: id("project"),
        endpoints,
    })
}

/// The Neutron URL: the cloud's override, else the catalog's `network` endpoint of the cloud's
/// interface (and region, when the cloud names one or the catalog has several).
pub fn network_endpoint(c: &Cloud, eps: &[Endpoint]) -> Result<String, String> {
    if let Some(u) = &c.network_endpoint {
        return Ok(u.clone());
    }
    let net: Vec<&Endpoint> = eps
        .iter()
        .filter(|e| e.service_type == "network" && e.interface == c.interface)
        .collect();
    let pick: Vec<&&Endpoint> = match &c.region_name {
        Some(r) => net.iter().filter(|e| &e.region == r).collect(),
        None => net.iter().collect(),
    };
    let regions = || {
        let mut r: Vec<&str> = net.iter().map(|e| e.region.as_str()).collect();
        r.sort();
        r.dedup();
        r.join(", ")
    };
    match pick.as_slice() {
        [one] => Ok(one.url.clone()),
        [] if net.is_empty() => Err(format!(
            "the catalog has no {} network endpoint (set interface, or network_endpoint_override in clouds.yaml)",
            c.interface
        )),
        [] => Err(format!(
            "the catalog has no network endpoint in region {} (regions: {}); set region_name",
            c.region_name.as_deref().unwrap_or("?"),
            regions()
        )),
        many => {
            let first = &many[0].url;
            if many.iter().all(|e| &e.url == first) {
                Ok(first.clone())
            } else {
                Err(format!(
                    "the catalog has network endpoints in several regions ({}): set region_name",
                    regions()
                ))
            }
        }
    }
}

/// Where tokens are cached: `$XDG_RUNTIME_DIR/vmpath`, else `~/.cache/vmpath`.
pub fn cache_dir(xdg_runtime: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    xdg_runtime
        .filter(|p| p.is_absolute())
        .map(|p| p.join("vmpath"))
        .or_else(|| {
            home.filter(|p| p.is_absolute())
                .map(|h| h.join(".cache/vmpath"))
        })
}

/// The cache file of a cloud and user: `token-NAME-HASH.json` (the hash of the identity, so two
/// users of one cloud do not share a file).
pub fn cache_file(dir: &Path, c: &Cloud) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.identity().hash(&mut h);
    let name: String = c
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
                ch
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    dir.join(format!("token-{name}-{:016x}.json", h.finish()))
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    identity: String,
    token: Token,
}

/// The cached token for `c`, when the file is ours (owner = us, no access for others), names
/// the same identity and is valid past `now + EXPIRY_MARGIN_S`. Anything else: `None` (and the
/// reason, for the report).
pub fn read_cache(file: &Path, c: &Cloud, now: i64) -> Result<Token, String> {
    let md = std::fs::symlink_metadata(file).map_err(|e| format!("no cached token ({e})"))?;
    if !md.file_type().is_file() {
        return Err(format!(
            "{} is not a regular file: not used",
            file.display()
        ));
    }
    if md.uid() != nix::unistd::geteuid().as_raw() || md.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not ours alone (owner {}, mode {:o}): not used",
            file.display(),
            md.uid(),
            md.mode() & 0o777
        ));
    }
    let text = crate::collect::files::read_text(file, 1 << 20)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let e: CacheEntry =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    if e.identity != c.identity() {
        return Err("the cached token is another identity's".into());
    }
    if e.token.expires_at <= now + EXPIRY_MARGIN_S {
        return Err("the cached token expires soon".into());
    }
    Ok(e.token)
}

/// Write the token to the cache: the directory made 0700 (an existing one must be ours and
/// closed to others), a temporary file 0600 opened without following symlinks, renamed into
/// place.
pub fn write_cache(file: &Path, c: &Cloud, t: &Token) -> Result<(), String> {
    let dir = file.parent().ok_or("no cache directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let md = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !md.file_type().is_dir()
        || md.uid() != nix::unistd::geteuid().as_raw()
        || md.permissions().mode() & 0o077 != 0
    {
        return Err(format!(
            "{} is not a directory of ours closed to others: the token is not cached",
            dir.display()
        ));
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file.file_name().and_then(|n| n.to_str()).unwrap_or("token"),
        std::process::id()
    ));
    let body = serde_json::to_vec(&CacheEntry {
        identity: c.identity(),
        token: t.clone(),
    })
    .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&tmp);
    let res = (|| -> std::io::Result<()> {
        let mut f = crate::collect::files::open_private(
            &tmp,
            0o600,
            crate::collect::files::Existing::Truncate,
        )?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", file.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::openstack::clouds::{resolve, Env, Files};

    fn cloud(yaml: &str) -> Cloud {
        resolve(
            &Files {
                clouds: Some(("/c.yaml".into(), yaml.into())),
                secure: None,
            },
            &Env::default(),
            Some("c"),
        )
        .unwrap()
        .unwrap()
    }

    const PW: &str = "clouds:\n  c:\n    auth:\n      auth_url: http://192.0.2.1:5000\n      username: vmpath\n      password: pw\n      project_name: service\n      user_domain_name: Default\n      project_domain_id: default\n    region_name: RegionOne\n";

    #[test]
    fn password_request_scopes_the_project() {
        let c = cloud(PW);
        let b = auth_request(&c);
        assert_eq!(b["auth"]["identity"]["methods"][0], "password");
        assert_eq!(b["auth"]["identity"]["password"]["user"]["name"], "vmpath");
        assert_eq!(
            b["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "Default"
        );
        assert_eq!(b["auth"]["identity"]["password"]["user"]["password"], "pw");
        assert_eq!(b["auth"]["scope"]["project"]["name"], "service");
        assert_eq!(b["auth"]["scope"]["project"]["domain"]["id"], "default");
        assert_eq!(
            tokens_url(&c.auth_url),
            "http://192.0.2.1:5000/v3/auth/tokens"
        );
        assert_eq!(tokens_url("https://k/v3/"), "https://k/v3/auth/tokens");
    }

    #[test]
    fn application_credential_request_has_no_scope() {
        let c = cloud("clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: http://k/v3\n      application_credential_id: ac1\n      application_credential_secret: s\n      project_name: ignored\n");
        let b = auth_request(&c);
        assert_eq!(b["auth"]["identity"]["application_credential"]["id"], "ac1");
        assert_eq!(
            b["auth"]["identity"]["application_credential"]["secret"],
            "s"
        );
        assert!(b["auth"].get("scope").is_none());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time("2026-12-03T21:05:00.000000Z"),
            Some(1_796_331_900)
        );
        assert_eq!(parse_time("2026-12-03T22:05:00+01:00"), Some(1_796_331_900));
        assert_eq!(parse_time("2026-12-03T21:05:00"), Some(1_796_331_900));
        assert_eq!(parse_time("2026-13-03T21:05:00Z"), None);
        assert_eq!(parse_time("tomorrow"), None);
    }

    /// Keystone 30's answer (password auth, the lab's catalog), trimmed to what is read.
    const TOKEN: &str = r#"{"token": {"methods": ["password"], "user": {"domain": {"id": "default", "name": "Default"}, "id": "4a8e0e8c7ef54b7e9a2d6a0b2c1f0e11", "name": "vmpath", "password_expires_at": null}, "audit_ids": ["x"], "expires_at": "2026-12-03T21:05:00.000000Z", "issued_at": "2026-12-03T20:05:00.000000Z", "project": {"domain": {"id": "default", "name": "Default"}, "id": "9c2b4d1e6f7a4b3c8d9e0f1a2b3c4d5e", "name": "service"}, "is_domain": false, "roles": [{"id": "r", "name": "admin"}], "catalog": [{"endpoints": [{"id": "e1", "interface": "public", "region_id": "RegionOne", "url": "http://192.0.2.1:9696/", "region": "RegionOne"}, {"id": "e2", "interface": "internal", "region_id": "RegionOne", "url": "http://192.0.2.1:9697", "region": "RegionOne"}], "id": "s1", "type": "network", "name": "neutron"}, {"endpoints": [{"id": "e3", "interface": "public", "region_id": "RegionOne", "url": "http://192.0.2.1:5000/v3/", "region": "RegionOne"}], "id": "s2", "type": "identity", "name": "keystone"}, {"endpoints": [], "id": "s3", "type": "compute", "name": "nova"}]}}"#;

    #[test]
    fn token_and_catalog() {
        let body: Value = serde_json::from_str(TOKEN).unwrap();
        let t = parse_token("gAAAAABtok", &body).unwrap();
        assert_eq!(t.expires_at, 1_796_331_900);
        assert_eq!(t.project_id, "9c2b4d1e6f7a4b3c8d9e0f1a2b3c4d5e");
        assert_eq!(t.endpoints.len(), 3);
        assert!(!format!("{t:?}").contains("gAAAAABtok"));
        let mut c = cloud(PW);
        assert_eq!(
            network_endpoint(&c, &t.endpoints).unwrap(),
            "http://192.0.2.1:9696"
        );
        c.interface = "internal".into();
        assert_eq!(
            network_endpoint(&c, &t.endpoints).unwrap(),
            "http://192.0.2.1:9697"
        );
        c.interface = "admin".into();
        assert!(network_endpoint(&c, &t.endpoints)
            .unwrap_err()
            .contains("no admin network endpoint"));
        c.interface = "public".into();
        c.region_name = Some("RegionTwo".into());
        assert!(network_endpoint(&c, &t.endpoints)
            .unwrap_err()
            .contains("regions: RegionOne"));
        assert!(parse_token("", &body).is_err());
        assert!(parse_token("t", &serde_json::json!({"token": {}})).is_err());
    }

    #[test]
    fn cache_round_trip_is_private_and_checked() {
        let dir = std::env::temp_dir().join(format!("vmpath-tokcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = cloud(PW);
        let file = cache_file(&dir.join("vmpath"), &c);
        let body: Value = serde_json::from_str(TOKEN).unwrap();
        let t = parse_token("gAAAAABtok", &body).unwrap();
        write_cache(&file, &c, &t).unwrap();
        let md = std::fs::metadata(&file).unwrap();
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(file.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let back = read_cache(&file, &c, t.expires_at - 3600).unwrap();
        assert_eq!(back.value.expose(), "gAAAAABtok");
        assert!(read_cache(&file, &c, t.expires_at - 60)
            .unwrap_err()
            .contains("expires soon"));
        let mut other = c.clone();
        other.username = Some("someone".into());
        assert_ne!(cache_file(&dir.join("vmpath"), &other), file);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_cache(&file, &c, 0)
            .unwrap_err()
            .contains("not ours alone"));
        // A symlink in the file's place is not followed.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
        assert!(read_cache(&file, &c, 0).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
