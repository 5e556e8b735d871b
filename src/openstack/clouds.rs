//! Credentials: one cloud of a standard `clouds.yaml`, as held in a Kubernetes Secret.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

use super::error::Error;

/// The Secret key holding the `clouds.yaml`.
pub const CLOUDS_YAML_KEY: &str = "clouds.yaml";

#[derive(Deserialize)]
struct CloudsFile {
    #[serde(default)]
    clouds: BTreeMap<String, CloudConfig>,
}

/// One cloud entry of a `clouds.yaml`. Secrets are held as [`SecretString`], so that `Debug`
/// never prints them.
#[derive(Clone, Debug, Deserialize)]
pub struct CloudConfig {
    /// `password` (default, also `v3password`) or `v3applicationcredential`
    /// (also `application_credential`).
    #[serde(default)]
    pub auth_type: Option<String>,
    pub auth: AuthConfig,
    #[serde(default)]
    pub region_name: Option<String>,
    /// `public` (default), `internal` or `admin`; `publicURL` style names are accepted.
    #[serde(default)]
    pub interface: Option<String>,
    /// Path of a PEM CA bundle; in a Secret, the key of that name (or of the path's file name).
    #[serde(default)]
    pub cacert: Option<String>,
    /// TLS verification; only an explicit `verify: false` turns it off.
    #[serde(default = "default_true")]
    pub verify: bool,
}

fn default_true() -> bool {
    true
}

/// The `auth:` section.
#[derive(Clone, Debug, Deserialize)]
pub struct AuthConfig {
    pub auth_url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub user_domain_name: Option<String>,
    #[serde(default)]
    pub user_domain_id: Option<String>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub project_domain_name: Option<String>,
    #[serde(default)]
    pub project_domain_id: Option<String>,
    /// Domain scope, when no project is given.
    #[serde(default)]
    pub domain_name: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub application_credential_id: Option<String>,
    #[serde(default)]
    pub application_credential_name: Option<String>,
    #[serde(default)]
    pub application_credential_secret: Option<SecretString>,
}

/// How to authenticate, decided from `auth_type` and the fields present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    ApplicationCredential,
}

impl CloudConfig {
    pub fn auth_method(&self) -> Result<AuthMethod, Error> {
        match self.auth_type.as_deref() {
            None if self.auth.application_credential_secret.is_some() => Ok(AuthMethod::ApplicationCredential),
            None | Some("password" | "v3password") => Ok(AuthMethod::Password),
            Some("v3applicationcredential" | "application_credential") => Ok(AuthMethod::ApplicationCredential),
            // The value is not quoted back: errors about a clouds.yaml name keys, never content.
            Some(_) => {
                Err(Error::Config("auth_type is not supported: use password or v3applicationcredential".to_string()))
            }
        }
    }

    /// The same credentials scoped to another project, to act on that project's servers as
    /// their owner. Application credentials are bound to their own project.
    pub fn in_project(&self, project_id: &str) -> Result<CloudConfig, Error> {
        if self.auth_method()? == AuthMethod::ApplicationCredential {
            return Err(Error::Config(format!(
                "application credentials act only in their own project, not in project {project_id}"
            )));
        }
        let mut config = self.clone();
        let auth = &mut config.auth;
        auth.project_id = Some(project_id.to_string());
        (auth.project_name, auth.project_domain_id, auth.project_domain_name) = (None, None, None);
        (auth.domain_id, auth.domain_name) = (None, None);
        Ok(config)
    }

    /// The catalog interface, normalised (`publicURL` -> `public`).
    pub fn interface(&self) -> String {
        self.interface.as_deref().unwrap_or("public").trim_end_matches("URL").to_string()
    }
}

/// Parses `clouds.yaml` text and picks one cloud.
pub fn parse(clouds_yaml: &str, cloud: &str) -> Result<CloudConfig, Error> {
    let file: CloudsFile =
        serde_saphyr::from_str(clouds_yaml).map_err(|e| Error::Config(invalid(clouds_yaml, cloud, &e)))?;
    let known: Vec<_> = file.clouds.keys().cloned().collect();
    let config =
        file.clouds.into_iter().find(|(name, _)| name == cloud).map(|(_, c)| c).ok_or_else(|| {
            Error::Config(format!("clouds.yaml has no cloud {cloud:?} (it has: {})", known.join(", ")))
        })?;
    config.auth_method()?;
    Ok(config)
}

/// Why a `clouds.yaml` cannot be read, by position and key only. The YAML error's own text
/// may quote the document (its snippet shows the lines around the error, the password's among
/// them), and this message goes to status, events and logs.
fn invalid(yaml: &str, cloud: &str, error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    // Only words of serde's and osmo's own: `expected`, `ty` and `field` describe osmo's types.
    let (what, in_schema) = match error.without_snippet() {
        E::SerdeMissingField { field, .. } => (format!("missing field {field}"), true),
        E::SerdeInvalidType { expected, .. } | E::SerdeInvalidValue { expected, .. } => {
            (format!("expected {expected}"), true)
        }
        E::Unexpected { expected, .. } => (format!("expected {expected}"), true),
        E::InvalidScalar { ty, .. } => (format!("not a valid {ty}"), true),
        E::NullIntoString { .. } => ("expected a string, found none".to_string(), true),
        E::DuplicateMappingKey { .. } => ("duplicate key".to_string(), true),
        _ => ("not valid YAML".to_string(), false),
    };
    let Some(at) = error.location() else { return format!("clouds.yaml: {what}") };
    let mut message = format!("clouds.yaml line {}, column {}", at.line(), at.column());
    // A syntax error's position may lie inside a broken scalar, where indentation says nothing.
    if in_schema && let Some(path) = key_path(yaml, at.line(), at.column(), cloud) {
        message += &format!(" (key {path})");
    }
    message += &format!(": {what}");
    if !in_schema && let Some(line) = yaml.lines().position(|l| l.trim_start_matches(' ').starts_with('\t')) {
        message += &format!(" (line {} is indented with a tab; YAML indents with spaces)", line + 1);
    }
    message
}

/// The keys leading to a position of the document, from the indentation of the lines up to it.
/// A key outside osmo's vocabulary (the keys it reads, and the cloud asked for) shows as `?`,
/// since where a document is broken, anything may stand where a key should.
fn key_path(yaml: &str, line: u64, column: u64, cloud: &str) -> Option<String> {
    let mut path: Vec<(usize, &str)> = Vec::new();
    for (index, text) in yaml.lines().take(line as usize).enumerate() {
        let indent = text.len() - text.trim_start_matches(' ').len();
        let Some(key) = block_key(&text[indent..]) else { continue };
        path.retain(|(outer, _)| *outer < indent);
        // On the error's own line, a position at the key is about the mapping that holds it.
        if index + 1 < line as usize || column as usize > indent + 1 {
            path.push((indent, key));
        }
    }
    let known = |key: &str| {
        key == cloud
            || [fields_of::<CloudsFile>(), fields_of::<CloudConfig>(), fields_of::<AuthConfig>()]
                .iter()
                .any(|fields| fields.contains(&key))
    };
    let keys: Vec<_> = path.iter().map(|&(_, key)| if known(key) { key } else { "?" }).collect();
    (!keys.is_empty()).then(|| keys.join("."))
}

/// The key of a block mapping's line (`key: ...` or `key:`), when it is a plain word.
fn block_key(text: &str) -> Option<&str> {
    let (key, rest) = text.split_once(':')?;
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    (plain && (rest.is_empty() || rest.starts_with([' ', '\t']))).then_some(key)
}

/// The keys serde reads for a struct, from its derived `Deserialize`.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value};
    /// A deserializer that only notes the fields it is asked for.
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("only the fields were asked for"))
        }
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// A cloud's settings and its CA bundle, taken from the data of a Secret.
pub fn from_secret(
    secret_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    cloud: &str,
) -> Result<(CloudConfig, Option<Vec<u8>>), Error> {
    let yaml = data
        .get(CLOUDS_YAML_KEY)
        .ok_or_else(|| Error::Config(format!("Secret {secret_name} has no key {CLOUDS_YAML_KEY}")))?;
    let yaml = std::str::from_utf8(yaml)
        .map_err(|_| Error::Config(format!("Secret {secret_name}: {CLOUDS_YAML_KEY} is not UTF-8")))?;
    let config = parse(yaml, cloud).map_err(|e| Error::Config(format!("Secret {secret_name}: {e}")))?;
    let cacert = match &config.cacert {
        None => None,
        Some(path) => {
            let file_name = path.rsplit('/').next().unwrap_or(path);
            let pem = data.get(path.as_str()).or_else(|| data.get(file_name)).ok_or_else(|| {
                Error::Config(format!(
                    "Secret {secret_name}: cacert {path:?} needs a key {file_name:?} holding the PEM bundle"
                ))
            })?;
            Some(pem.clone())
        }
    };
    Ok((config, cacert))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const CLOUDS: &str = r#"
clouds:
  old:
    auth:
      auth_url: https://keystone.example:5000/v3
      username: admin
      password: s3cret
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: internalURL
    cacert: /etc/openstack/ca.pem
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.example:5000/v3
      application_credential_id: abc
      application_credential_secret: t0psecret
    verify: false
"#;

    #[test]
    fn password_cloud_is_read_with_region_interface_and_cacert() {
        let c = parse(CLOUDS, "old").unwrap();
        assert_eq!(c.auth_method().unwrap(), AuthMethod::Password);
        assert_eq!(c.auth.password.as_ref().unwrap().expose_secret(), "s3cret");
        assert_eq!(c.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(c.interface(), "internal");
        assert!(c.verify, "TLS is verified unless said otherwise");
    }

    #[test]
    fn application_credentials_and_explicit_verify_false() {
        let c = parse(CLOUDS, "appcred").unwrap();
        assert_eq!(c.auth_method().unwrap(), AuthMethod::ApplicationCredential);
        assert!(!c.verify);
        assert_eq!(c.interface(), "public");
    }

    #[test]
    fn password_credentials_are_scoped_to_another_project_by_id() {
        let c = parse(CLOUDS, "old").unwrap().in_project("p-42").unwrap();
        assert_eq!(c.auth.project_id.as_deref(), Some("p-42"));
        assert_eq!((c.auth.project_name, c.auth.project_domain_name), (None, None));
        assert_eq!(c.auth.user_domain_name.as_deref(), Some("Default"), "the user is found as before");
        let e = parse(CLOUDS, "appcred").unwrap().in_project("p-42").unwrap_err().to_string();
        assert!(e.contains("application credentials") && e.contains("p-42"), "{e}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let shown = format!("{:?} {:?}", parse(CLOUDS, "old").unwrap(), parse(CLOUDS, "appcred").unwrap());
        assert!(!shown.contains("s3cret") && !shown.contains("t0psecret"), "{shown}");
    }

    #[test]
    fn unknown_cloud_lists_the_known_ones() {
        let e = parse(CLOUDS, "new").unwrap_err().to_string();
        assert_eq!(e, r#"clouds.yaml has no cloud "new" (it has: appcred, old)"#);
    }

    #[test]
    fn unsupported_auth_type_is_named_by_its_key() {
        let yaml = "clouds:\n  x:\n    auth_type: t0ken-Xy7\n    auth: {auth_url: http://k/v3}\n";
        let e = parse(yaml, "x").unwrap_err();
        assert_eq!(e.to_string(), "auth_type is not supported: use password or v3applicationcredential");
        assert!(!format!("{e:?}").contains("t0ken-Xy7"));
    }

    const PASSWORD: &str = "Zq9-hunter2-wX";

    #[test]
    fn errors_of_a_broken_clouds_yaml_name_the_position_and_key_never_the_text() {
        let auth = |lines: &str| format!("clouds:\n  old:\n    auth:\n      auth_url: http://k/v3\n{lines}");
        let cases = [
            // Bad indentation.
            (
                auth(&format!("      password: {PASSWORD}\n     project_name: admin\n")),
                "clouds.yaml line 6, column 6: not valid YAML",
            ),
            // The password's quote left open.
            (
                auth(&format!("      password: \"{PASSWORD}\n      project_name: admin\n")),
                "clouds.yaml line 6, column 7: not valid YAML",
            ),
            (auth(&format!("      password: {PASSWORD}: x\n")), "clouds.yaml line 5, column 31: not valid YAML"),
            (
                auth(&format!("\tpassword: {PASSWORD}\n")),
                "clouds.yaml line 4, column 17: not valid YAML (line 5 is indented with a tab; YAML indents with spaces)",
            ),
            (
                auth(&format!("      password: {PASSWORD}\n      password: {PASSWORD}\n")),
                "clouds.yaml line 6, column 7 (key clouds.old.auth): duplicate key",
            ),
            // Wrong types.
            (
                format!("clouds:\n  old:\n    verify: {PASSWORD}\n    auth: {{auth_url: http://k/v3}}\n"),
                "clouds.yaml line 3, column 13 (key clouds.old.verify): not a valid boolean",
            ),
            (
                format!("clouds:\n  old:\n    auth: {PASSWORD}\n"),
                "clouds.yaml line 3, column 11 (key clouds.old.auth): expected mapping start",
            ),
            (
                format!("clouds:\n  old:\n    auth:\n      password: {PASSWORD}\n"),
                "clouds.yaml line 4, column 7 (key clouds.old.auth): missing field auth_url",
            ),
            // Where the password stands as a key, it is not named.
            (
                format!("clouds:\n  {PASSWORD}:\n    verify: maybe\n"),
                "clouds.yaml line 3, column 13 (key clouds.?.verify): not a valid boolean",
            ),
        ];
        for (yaml, expected) in cases {
            let mut data = BTreeMap::from([(CLOUDS_YAML_KEY.to_string(), yaml.into_bytes())]);
            data.insert("ca.pem".into(), b"PEM".to_vec());
            let error = from_secret("creds", &data, "old").unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(PASSWORD) && !shown.contains("hunter2"), "{shown}");
            assert_eq!(error.to_string(), format!("Secret creds: {expected}"));
        }
    }

    #[test]
    fn secret_supplies_clouds_yaml_and_the_ca_bundle() {
        let mut data = BTreeMap::from([(CLOUDS_YAML_KEY.to_string(), CLOUDS.as_bytes().to_vec())]);
        let e = from_secret("creds", &data, "old").unwrap_err().to_string();
        assert!(e.contains(r#"needs a key "ca.pem""#), "{e}");
        data.insert("ca.pem".into(), b"PEM".to_vec());
        let (_, ca) = from_secret("creds", &data, "old").unwrap();
        assert_eq!(ca.as_deref(), Some(&b"PEM"[..]));
        let e = from_secret("creds", &BTreeMap::new(), "old").unwrap_err().to_string();
        assert_eq!(e, "Secret creds has no key clouds.yaml");
    }
}
