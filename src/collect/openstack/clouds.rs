//! Credentials the OpenStack way: `clouds.yaml` (+ `secure.yaml` merged over it), `OS_CLOUD`, or
//! plain `OS_*` variables (the cloud `envvars`), as openstacksdk and the `openstack` CLI read
//! them. [`resolve`] is pure (files' texts and the environment in, a [`Cloud`] out);
//! [`load`] finds and reads the files, bounded.
//!
//! Search order, the first file found wins: `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
//! `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml` (and the same for
//! `secure.yaml`, `OS_CLIENT_SECURE_FILE` first). The cloud: `--os-cloud`, else `OS_CLOUD`, else
//! the config file's `cloud`, else `envvars` when `OS_AUTH_URL` is set, else the only cloud of
//! clouds.yaml. No secret is ever printed: [`Secret`] shows as `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// A password, token or application-credential secret: never printed, logged or serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    Password,
    ApplicationCredential,
    Token,
}

impl AuthType {
    pub fn name(self) -> &'static str {
        match self {
            AuthType::Password => "password",
            AuthType::ApplicationCredential => "v3applicationcredential",
            AuthType::Token => "token",
        }
    }
}

/// One cloud's credentials and endpoint choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloud {
    /// The cloud's name in clouds.yaml, or `envvars`.
    pub name: String,
    /// Where it was read from (files, or `OS_* variables`).
    pub origin: String,
    pub auth_type: AuthType,
    /// Keystone, without a trailing `/` (`/v3` is added when missing).
    pub auth_url: String,
    pub username: Option<String>,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<Secret>,
    pub token: Option<Secret>,
    pub region_name: Option<String>,
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Verify the servers' certificates (`verify: false` turns it off).
    pub verify: bool,
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `network_endpoint_override`: the Neutron URL to use instead of the catalog's.
    pub network_endpoint: Option<String>,
}

impl Cloud {
    /// Who the token is for (no secret): the cache's key and the reports' wording.
    pub fn identity(&self) -> String {
        let user = match self.auth_type {
            AuthType::ApplicationCredential => format!(
                "appcred:{}",
                self.application_credential_id
                    .clone()
                    .or_else(|| self.application_credential_name.clone())
                    .unwrap_or_default()
            ),
            _ => self
                .user_id
                .clone()
                .or_else(|| {
                    self.username.clone().map(|u| {
                        format!(
                            "{u}@{}",
                            self.user_domain_id
                                .clone()
                                .or_else(|| self.user_domain_name.clone())
                                .unwrap_or_else(|| "default".into())
                        )
                    })
                })
                .unwrap_or_else(|| "token".into()),
        };
        let project = self
            .project_id
            .clone()
            .or_else(|| {
                self.project_name.clone().map(|p| {
                    format!(
                        "{p}@{}",
                        self.project_domain_id
                            .clone()
                            .or_else(|| self.project_domain_name.clone())
                            .unwrap_or_else(|| "default".into())
                    )
                })
            })
            .unwrap_or_default();
        format!(
            "{} {} {user} {project} {}",
            self.auth_type.name(),
            self.auth_url,
            self.region_name.as_deref().unwrap_or("")
        )
    }

    /// Every secret of this cloud (to take out of error messages).
    pub fn secrets(&self) -> Vec<&str> {
        [
            &self.password,
            &self.application_credential_secret,
            &self.token,
        ]
        .into_iter()
        .flatten()
        .map(Secret::expose)
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// What the resolution reads besides the files: the environment and the user's directories.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub vars: BTreeMap<String, String>,
    pub home: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
}

impl Env {
    /// This process's environment (only `OS_*`, `HOME`, `XDG_*`).
    pub fn current() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("OS_") || k == "HOME" || k.starts_with("XDG_"))
            .collect::<BTreeMap<_, _>>();
        let home = vars.get("HOME").map(PathBuf::from);
        Env {
            vars,
            home,
            cwd: std::env::current_dir().ok(),
        }
    }
    fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The candidate paths of a file (`clouds.yaml` or `secure.yaml`), in search order.
pub fn search_paths(env: &Env, file: &str, override_var: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = env.var(override_var) {
        v.push(PathBuf::from(p));
    }
    if let Some(c) = &env.cwd {
        v.push(c.join(file));
    }
    if let Some(h) = &env.home {
        v.push(h.join(".config/openstack").join(file));
    }
    v.push(Path::new("/etc/openstack").join(file));
    v
}

/// The texts read: clouds.yaml and secure.yaml (path and text) when found.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub clouds: Option<(PathBuf, String)>,
    pub secure: Option<(PathBuf, String)>,
}

/// Merge `over` into `base` (maps key by key, anything else replaced).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_file(path: &Path, t: &str) -> Result<Value> {
    let v = super::yaml::parse(t).map_err(|e| {
        Error::usage(format!(
            "{}: not valid YAML: {e} (fix the file, or point OS_CLIENT_CONFIG_FILE elsewhere)",
            path.display()
        ))
    })?;
    match v {
        Value::Object(_) | Value::Null => Ok(v),
        _ => Err(Error::usage(format!(
            "{}: not a mapping with `clouds:` at the top",
            path.display()
        ))),
    }
}

/// Resolve the cloud to use, or `None` when no credentials are configured (no cloud asked
/// for, no `OS_AUTH_URL`, and clouds.yaml absent or holding several clouds). An error names
/// the file or variable to fix.
pub fn resolve(files: &Files, env: &Env, asked: Option<&str>) -> Result<Option<Cloud>> {
    let mut doc = match &files.clouds {
        Some((p, t)) => parse_file(p, t)?,
        None => Value::Null,
    };
    if let Some((p, t)) = &files.secure {
        let s = parse_file(p, t)?;
        if doc.is_null() {
            doc = s;
        } else {
            merge(&mut doc, &s);
        }
    }
    let clouds = doc
        .get("clouds")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = asked
        .map(str::to_string)
        .or_else(|| env.var("OS_CLOUD").map(str::to_string));
    let origin_files = || {
        [&files.clouds, &files.secure]
            .into_iter()
            .flatten()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let (name, entry, origin) = match name {
        Some(n) if n == "envvars" && !clouds.contains_key("envvars") => {
            (n, from_env(env), "OS_* variables".to_string())
        }
        Some(n) => match clouds.get(&n) {
            Some(c) => (n, c.clone(), origin_files()),
            None => {
                let known = clouds.keys().cloned().collect::<Vec<_>>();
                return Err(Error::usage(format!(
                    "cloud '{n}' is not in {} (clouds there: {}); fix OS_CLOUD / --os-cloud or the file",
                    if files.clouds.is_some() { origin_files() } else { "any clouds.yaml (none found)".into() },
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                )));
            }
        },
        None if env.var("OS_AUTH_URL").is_some() => (
            "envvars".to_string(),
            from_env(env),
            "OS_* variables".to_string(),
        ),
        None if clouds.len() == 1 => {
            let (n, c) = clouds
                .iter()
                .next()
                .map(|(n, c)| (n.clone(), c.clone()))
                .unwrap_or_default();
            (n, c, origin_files())
        }
        None => return Ok(None),
    };
    cloud_from(&name, &entry, origin).map(Some)
}

/// The `envvars` cloud: `OS_*` variables, lowercased without the prefix (auth fields under
/// `auth`).
fn from_env(env: &Env) -> Value {
    const AUTH: &[&str] = &[
        "auth_url",
        "username",
        "user_id",
        "password",
        "user_domain_name",
        "user_domain_id",
        "project_name",
        "project_id",
        "tenant_name",
        "tenant_id",
        "project_domain_name",
        "project_domain_id",
        "application_credential_id",
        "application_credential_name",
        "application_credential_secret",
        "token",
    ];
    let mut auth = serde_json::Map::new();
    let mut top = serde_json::Map::new();
    for (k, v) in &env.vars {
        let Some(key) = k.strip_prefix("OS_") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if v.is_empty() || key == "cloud" {
            continue;
        }
        if AUTH.contains(&key.as_str()) {
            auth.insert(key, Value::String(v.clone()));
        } else {
            top.insert(key, Value::String(v.clone()));
        }
    }
    top.insert("auth".into(), Value::Object(auth));
    Value::Object(top)
}

fn boolish(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Some(true),
            "false" | "no" | "0" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn cloud_from(name: &str, c: &Value, origin: String) -> Result<Cloud> {
    let where_ = origin.clone();
    let bad = |m: String| Error::usage(format!("cloud '{name}' ({where_}): {m}"));
    if c.get("profile").is_some() {
        return Err(bad(
            "`profile:` (vendor profiles) is not supported: put auth_url and the region in the cloud itself".into(),
        ));
    }
    let empty = Value::Null;
    let auth = c.get("auth").unwrap_or(&empty);
    let a = |k: &str| text(auth.get(k)).or_else(|| text(c.get(k)));
    let auth_type = match text(c.get("auth_type"))
        .unwrap_or_else(|| "password".into())
        .as_str()
    {
        "password" | "v3password" => AuthType::Password,
        "v3applicationcredential" | "applicationcredential" | "application_credential" => {
            AuthType::ApplicationCredential
        }
        "token" | "v3token" => AuthType::Token,
        other => {
            return Err(bad(format!(
            "auth_type '{other}' is not supported (use password, v3applicationcredential or token)"
        )))
        }
    };
    let auth_url =
        a("auth_url").ok_or_else(|| bad("no auth_url: add the Keystone URL under auth:".into()))?;
    if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
        return Err(bad(format!(
            "auth_url '{auth_url}' is not an http:// or https:// URL"
        )));
    }
    let interface = text(c.get("interface"))
        .or_else(|| text(c.get("endpoint_type")))
        .unwrap_or_else(|| "public".into())
        .trim_end_matches("URL")
        .to_ascii_lowercase();
    if !["public", "internal", "admin"].contains(&interface.as_str()) {
        return Err(bad(format!(
            "interface '{interface}' is not public, internal or admin"
        )));
    }
    let verify = match (boolish(c.get("verify")), boolish(c.get("insecure"))) {
        (Some(v), _) => v,
        (None, Some(i)) => !i,
        (None, None) => true,
    };
    let cloud = Cloud {
        name: name.to_string(),
        origin,
        auth_type,
        auth_url: auth_url.trim_end_matches('/').to_string(),
        username: a("username"),
        user_id: a("user_id"),
        password: a("password").map(Secret),
        user_domain_name: a("user_domain_name").or_else(|| a("domain_name")),
        user_domain_id: a("user_domain_id").or_else(|| a("domain_id")),
        project_name: a("project_name").or_else(|| a("tenant_name")),
        project_id: a("project_id").or_else(|| a("tenant_id")),
        project_domain_name: a("project_domain_name").or_else(|| a("domain_name")),
        project_domain_id: a("project_domain_id").or_else(|| a("domain_id")),
        application_credential_id: a("application_credential_id"),
        application_credential_name: a("application_credential_name"),
        application_credential_secret: a("application_credential_secret").map(Secret),
        token: a("token").map(Secret),
        region_name: text(c.get("region_name")),
        interface,
        verify,
        cacert: text(c.get("cacert")).map(PathBuf::from),
        cert: text(c.get("cert")).map(PathBuf::from),
        key: text(c.get("key")).map(PathBuf::from),
        network_endpoint: text(c.get("network_endpoint_override"))
            .map(|s| s.trim_end_matches('/').to_string()),
    };
    match auth_type {
        AuthType::Password => {
            if cloud.username.is_none() && cloud.user_id.is_none() {
                return Err(bad("password auth needs username (or user_id)".into()));
            }
            if cloud.password.is_none() {
                return Err(bad(
                    "password auth needs a password (in secure.yaml, or OS_PASSWORD)".into(),
                ));
            }
        }
        AuthType::ApplicationCredential => {
            if cloud.application_credential_secret.is_none() {
                return Err(bad(
                    "v3applicationcredential needs application_credential_secret".into(),
                ));
            }
            if cloud.application_credential_id.is_none()
                && (cloud.application_credential_name.is_none()
                    || (cloud.username.is_none() && cloud.user_id.is_none()))
            {
                return Err(bad("v3applicationcredential needs application_credential_id (or application_credential_name with username or user_id)".into()));
            }
        }
        AuthType::Token => {
            if cloud.token.is_none() {
                return Err(bad("token auth needs token".into()));
            }
        }
    }
    Ok(cloud)
}

/// Cap on clouds.yaml and secure.yaml.
const MAX_FILE: u64 = 256 << 10;

/// Find and read the files (bounded; the first found of each), then resolve. A file that
/// exists but cannot be read is an error naming it.
pub fn load(env: &Env, asked: Option<&str>) -> Result<Option<Cloud>> {
    let read = |file: &str, var: &str| -> Result<Option<(PathBuf, String)>> {
        for p in search_paths(env, file, var) {
            match crate::collect::files::read_text(&p, MAX_FILE) {
                Ok(t) => return Ok(Some((p, t))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::usage(format!(
                        "cannot read {}: {e} (fix its permissions, or set {var} to another file)",
                        p.display()
                    )))
                }
            }
        }
        Ok(None)
    };
    let files = Files {
        clouds: read("clouds.yaml", "OS_CLIENT_CONFIG_FILE")?,
        secure: read("secure.yaml", "OS_CLIENT_SECURE_FILE")?,
    };
    resolve(&files, env, asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: Some("/home/op".into()),
            cwd: Some("/work".into()),
        }
    }

    fn files(clouds: &str, secure: Option<&str>) -> Files {
        Files {
            clouds: Some(("/etc/openstack/clouds.yaml".into(), clouds.into())),
            secure: secure.map(|s| ("/etc/openstack/secure.yaml".into(), s.into())),
        }
    }

    const CLOUDS: &str = "clouds:
  lab:
    auth:
      auth_url: http://192.0.2.1:5000/v3/
      username: vmpath
      project_name: service
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    cacert: /etc/ssl/lab.pem
  other:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example.test/v3
      application_credential_id: 0123
      application_credential_secret: s3cr3t
    verify: false
";

    #[test]
    fn secure_yaml_is_merged_and_secrets_never_shown() {
        let c = resolve(
            &files(
                CLOUDS,
                Some("clouds:\n  lab:\n    auth:\n      password: hunter2\n"),
            ),
            &env(&[("OS_CLOUD", "lab")]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.auth_type, AuthType::Password);
        assert_eq!(c.auth_url, "http://192.0.2.1:5000/v3");
        assert_eq!(c.interface, "internal");
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(c.verify);
        assert_eq!(c.cacert.as_deref(), Some(Path::new("/etc/ssl/lab.pem")));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.secrets(), vec!["hunter2"]);
        assert!(!c.identity().contains("hunter2"));
    }

    #[test]
    fn application_credentials_and_verify_false() {
        let c = resolve(&files(CLOUDS, None), &env(&[]), Some("other"))
            .unwrap()
            .unwrap();
        assert_eq!(c.auth_type, AuthType::ApplicationCredential);
        assert_eq!(c.application_credential_id.as_deref(), Some("0123"));
        assert!(!c.verify);
        assert!(c
            .identity()
            .starts_with("v3applicationcredential https://keystone.example.test/v3 appcred:0123"));
    }

    #[test]
    fn password_cloud_without_password_names_what_to_add() {
        let e = resolve(&files(CLOUDS, None), &env(&[("OS_CLOUD", "lab")]), None).unwrap_err();
        assert!(e.to_string().contains("needs a password"), "{e}");
    }

    #[test]
    fn envvars_cloud_from_os_variables() {
        let c = resolve(
            &Files::default(),
            &env(&[
                ("OS_AUTH_URL", "http://192.0.2.1:5000"),
                ("OS_AUTH_TYPE", "token"),
                ("OS_TOKEN", "gAAAAtok"),
                ("OS_PROJECT_ID", "p1"),
                ("OS_INTERFACE", "publicURL"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.name, "envvars");
        assert_eq!(c.auth_type, AuthType::Token);
        assert_eq!(c.interface, "public");
        assert_eq!(c.project_id.as_deref(), Some("p1"));
        assert_eq!(c.origin, "OS_* variables");
    }

    #[test]
    fn nothing_configured_is_none_and_a_single_cloud_is_used() {
        assert!(resolve(&Files::default(), &env(&[]), None)
            .unwrap()
            .is_none());
        assert!(resolve(&files(CLOUDS, None), &env(&[]), None)
            .unwrap()
            .is_none());
        let one = "clouds:\n  only:\n    auth:\n      auth_url: http://192.0.2.1:5000\n      token: t\n    auth_type: token\n";
        let c = resolve(&files(one, None), &env(&[]), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "only");
    }

    #[test]
    fn unknown_cloud_lists_the_known_ones() {
        let e = resolve(&files(CLOUDS, None), &env(&[("OS_CLOUD", "prod")]), None).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("'prod'") && m.contains("lab, other"), "{m}");
    }

    #[test]
    fn search_order() {
        let p = search_paths(
            &env(&[("OS_CLIENT_CONFIG_FILE", "/x/c.yaml")]),
            "clouds.yaml",
            "OS_CLIENT_CONFIG_FILE",
        );
        assert_eq!(
            p,
            vec![
                PathBuf::from("/x/c.yaml"),
                PathBuf::from("/work/clouds.yaml"),
                PathBuf::from("/home/op/.config/openstack/clouds.yaml"),
                PathBuf::from("/etc/openstack/clouds.yaml"),
            ]
        );
    }

    #[test]
    fn unsupported_auth_and_profiles_are_usage_errors() {
        let t = "clouds:\n  a:\n    auth_type: v3oidcpassword\n    auth:\n      auth_url: http://x\n  b:\n    profile: vexxhost\n";
        assert!(resolve(&files(t, None), &env(&[]), Some("a"))
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(resolve(&files(t, None), &env(&[]), Some("b"))
            .unwrap_err()
            .to_string()
            .contains("profile"));
    }
}
