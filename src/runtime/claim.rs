//! Cluster-wide claims on what a resource acts on in OpenStack (a server, a compute host), so
//! that two resources never act on one thing at once, whatever their namespaces or cloud
//! entries.
//!
//! A claim is a `coordination.k8s.io/v1` Lease in the operator's namespace, named from a hash
//! of what identifies the thing in OpenStack. Creating it is the atomic step: of two resources
//! that race for one thing, the API server lets exactly one create succeed. The Lease names
//! its holder (kind, namespace, name, UID); a claim whose holder is gone, or no longer needs
//! it, is taken over by a replace that carries the resourceVersion read, so that of two
//! takers too only one wins.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::metrics::Metrics;

/// Label of every claim: what kind of thing it holds (`server`, `host`).
pub const CLAIM_LABEL: &str = "osmo.dev/claim";
/// Label of a claim: its holder's UID.
pub const HOLDER_UID_LABEL: &str = "osmo.dev/holder-uid";
const HOLDER_KIND: &str = "osmo.dev/holder-kind";
const HOLDER_NAMESPACE: &str = "osmo.dev/holder-namespace";
const HOLDER_NAME: &str = "osmo.dev/holder-name";
/// Annotation of a claim: what it holds, in words.
const CLAIMED: &str = "osmo.dev/claimed";

/// Attempts at a claim when others keep changing it between our read and our write.
const ATTEMPTS: usize = 3;

/// What a claim holds, by what identifies it in OpenStack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    kind: &'static str,
    /// The identifying parts, normalized.
    parts: Vec<String>,
    /// The same, in words, for people reading the Lease.
    words: String,
}

impl Key {
    /// A server: its ID is unique in its Nova, and the Keystone and project say which Nova.
    pub fn server(auth_url: &str, project_id: &str, server_id: &str) -> Key {
        let keystone = normalize_auth_url(auth_url);
        let words = format!("server {server_id} of project {project_id} at {keystone}");
        Key { kind: "server", parts: vec![keystone, project_id.to_string(), server_id.to_string()], words }
    }

    /// A compute host: its name is unique in the cloud its Keystone serves.
    pub fn host(auth_url: &str, host: &str) -> Key {
        let keystone = normalize_auth_url(auth_url);
        let words = format!("host {host} at {keystone}");
        Key { kind: "host", parts: vec![keystone, host.to_string()], words }
    }

    /// The Lease's name: `osmo-<kind>-` and 128 bits of the SHA-256 of the parts (a name must
    /// be short; IDs and URLs may not be).
    pub fn lease_name(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, self.parts.join("\n").as_bytes());
        let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("osmo-{}-{hex}", self.kind)
    }

    /// What the claim holds, in words.
    pub fn words(&self) -> &str {
        &self.words
    }
}

/// A Keystone URL as it names one Keystone: scheme and host in lower case, no default port, no
/// credentials, query or trailing slash, and no identity version (`/v3` and the bare URL are
/// the same Keystone to a client).
pub fn normalize_auth_url(auth_url: &str) -> String {
    let Ok(url) = url::Url::parse(auth_url.trim()) else { return auth_url.trim().trim_end_matches('/').to_string() };
    let mut path = url.path().trim_end_matches('/');
    for version in ["/v3", "/v2.0"] {
        path = path.strip_suffix(version).unwrap_or(path);
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", url.scheme(), path.trim_end_matches('/'))
}

/// Who holds a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Holder {
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Holder {
        Holder {
            kind: K::kind(&()).into_owned(),
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            uid: obj.uid().unwrap_or_default(),
        }
    }

    /// `namespace/name`, as messages name it.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The holder a Lease names; `None` when it names none in full (not one of ours, or edited).
    fn read(lease: &Lease) -> Option<Holder> {
        let annotation = |key: &str| lease.annotations().get(key).filter(|v| !v.is_empty()).cloned();
        Some(Holder {
            kind: annotation(HOLDER_KIND)?,
            namespace: annotation(HOLDER_NAMESPACE)?,
            name: annotation(HOLDER_NAME)?,
            uid: lease.labels().get(HOLDER_UID_LABEL).filter(|v| !v.is_empty())?.clone(),
        })
    }
}

/// What a claimant does with the claim it found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The claimant's own (made before a crash, or in an earlier reconcile).
    Ours,
    /// Another resource's: whether it still holds it is asked next.
    Theirs(Holder),
    /// A Lease of that name that names no holder: refused, since nobody can tell it is free.
    Unreadable,
}

/// Decides on the claim found under the key's name.
pub fn found(lease: &Lease, me: &Holder) -> Found {
    match Holder::read(lease) {
        Some(holder) if holder.uid == me.uid => Found::Ours,
        Some(holder) => Found::Theirs(holder),
        None => Found::Unreadable,
    }
}

/// The outcome of a claim.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Held by the claimant, in the Lease of this name.
    Held(String),
    /// Held by another resource that still needs it: the claimant must not act.
    Refused { lease: String, holder: String },
}

/// The claims, in the operator's namespace.
#[derive(Clone)]
pub struct Claims {
    client: Client,
    namespace: String,
    /// Each claim made, taken over or released counts as a Kubernetes write.
    metrics: Arc<Metrics>,
}

impl Claims {
    pub fn new(client: Client, namespace: String, metrics: Arc<Metrics>) -> Self {
        Claims { client, namespace, metrics }
    }

    /// The namespace the claims are kept in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Claims `key` for `me`. A claim held by another is taken over when that holder is gone
    /// (not found, or replaced by a resource of the same name) or `still_holds` says it no
    /// longer needs it; otherwise the claim is refused, naming the holder.
    pub async fn claim<K>(&self, key: &Key, me: &K, still_holds: impl Fn(&K) -> bool) -> Result<Claim, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    {
        let api = self.api();
        let name = key.lease_name();
        let holder = Holder::of(me);
        let mut conflict = None;
        for _ in 0..ATTEMPTS {
            // Read first: a claimant that holds it already (a drain checks each time) writes nothing.
            let Some(existing) = api.get_opt(&name).await? else {
                match api.create(&PostParams::default(), &lease(&name, key, &holder)).await {
                    Ok(_) => {
                        self.metrics.kubernetes_write("Lease");
                        return Ok(Claim::Held(name));
                    }
                    // Another claimant created it since our read: read it again.
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            };
            let theirs = match found(&existing, &holder) {
                Found::Ours => return Ok(Claim::Held(name)),
                Found::Unreadable => {
                    return Ok(Claim::Refused { lease: name, holder: "unknown (the claim names no holder)".into() });
                }
                Found::Theirs(theirs) => theirs,
            };
            if self.holds(&theirs, &still_holds).await? {
                return Ok(Claim::Refused { lease: name, holder: theirs.path() });
            }
            tracing::info!(claim = %name, holder = %theirs.path(), claimant = %holder.path(), "taking over a claim its holder no longer needs");
            let mut taken = lease(&name, key, &holder);
            // The version read: if anyone changed the claim since, the replace fails.
            taken.metadata.resource_version = existing.metadata.resource_version.clone();
            match api.replace(&name, &PostParams::default(), &taken).await {
                Ok(_) => {
                    self.metrics.kubernetes_write("Lease");
                    return Ok(Claim::Held(name));
                }
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => conflict = Some(kube::Error::Api(s)),
                Err(e) => return Err(e),
            }
        }
        Err(conflict.unwrap_or_else(|| kube::Error::Service(format!("claim {name} kept changing").into())))
    }

    /// Whether `holder` still holds its claim: it exists with its UID and `still_holds` it.
    /// When it cannot be read (no right to read that namespace), it is taken to hold it.
    async fn holds<K>(&self, holder: &Holder, still_holds: &impl Fn(&K) -> bool) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    {
        if holder.kind != K::kind(&()) {
            return Ok(true);
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &holder.namespace);
        match api.get_opt(&holder.name).await {
            Ok(Some(current)) => Ok(current.uid().as_deref() == Some(holder.uid.as_str()) && still_holds(&current)),
            Ok(None) => Ok(false),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Deletes the claim `name` if `me` holds it (a claim taken over since is left to its new
    /// holder); a claim already gone is released.
    pub async fn release<K: Resource<DynamicType = ()>>(&self, name: &str, me: &K) -> Result<(), kube::Error> {
        let api = self.api();
        let Some(lease) = api.get_opt(name).await? else { return Ok(()) };
        if found(&lease, &Holder::of(me)) != Found::Ours {
            return Ok(());
        }
        let preconditions = Preconditions { resource_version: lease.metadata.resource_version.clone(), uid: None };
        match api.delete(name, &DeleteParams { preconditions: Some(preconditions), ..Default::default() }).await {
            Ok(_) => {
                self.metrics.kubernetes_write("Lease");
                tracing::info!(claim = %name, holder = %Holder::of(me).path(), "released claim");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The Lease that says `holder` holds `key`.
fn lease(name: &str, key: &Key, holder: &Holder) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                [(CLAIM_LABEL, key.kind.to_string()), (HOLDER_UID_LABEL, holder.uid.clone())]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            ),
            annotations: Some(
                [
                    (HOLDER_KIND, holder.kind.clone()),
                    (HOLDER_NAMESPACE, holder.namespace.clone()),
                    (HOLDER_NAME, holder.name.clone()),
                    (CLAIMED, key.words.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            ),
            ..Default::default()
        },
        // `kubectl get leases` shows the holder.
        spec: Some(LeaseSpec {
            holder_identity: Some(format!("{} {}", holder.kind, holder.path())),
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_keystone_is_one_key_however_its_url_is_written() {
        let same = [
            "http://Keystone.Example:5000/v3",
            "http://keystone.example:5000/v3/",
            "http://keystone.example:5000",
            "http://keystone.example:5000/",
            "http://keystone.example:5000/v2.0",
            "  http://user:secret@keystone.example:5000/v3?x=1 ",
        ];
        for url in same {
            assert_eq!(normalize_auth_url(url), "http://keystone.example:5000", "{url}");
        }
        assert_eq!(normalize_auth_url("https://keystone.example:443/identity/v3"), "https://keystone.example/identity");
        assert_ne!(normalize_auth_url("http://keystone.example:5001/v3"), normalize_auth_url(same[0]));
        assert_eq!(
            Key::server(same[0], "p", "s").lease_name(),
            Key::server(same[2], "p", "s").lease_name(),
            "two cloud entries of one Keystone claim one server"
        );
        // No credential of the URL reaches the Lease.
        assert!(!Key::host(same[5], "h").words().contains("secret"));
    }

    #[test]
    fn names_are_short_and_tell_servers_hosts_and_parts_apart() {
        let url = "http://k:5000/v3";
        let server = Key::server(url, "project", "server-1").lease_name();
        assert!(server.starts_with("osmo-server-") && server.len() == "osmo-server-".len() + 32, "{server}");
        assert!(Key::host(url, "h1").lease_name().starts_with("osmo-host-"));
        let names = [
            server,
            Key::server(url, "project", "server-2").lease_name(),
            Key::server(url, "other", "server-1").lease_name(),
            Key::server("http://k2:5000/v3", "project", "server-1").lease_name(),
            Key::host(url, "h2").lease_name(),
        ];
        let distinct: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(
            Key::server(url, "project", "server-1").words(),
            "server server-1 of project project at http://k:5000"
        );
    }

    fn holder(uid: &str) -> Holder {
        Holder { kind: "InstanceMigration".into(), namespace: "team-a".into(), name: "web".into(), uid: uid.into() }
    }

    #[test]
    fn a_claim_found_is_ours_by_uid_theirs_otherwise_and_refused_when_unreadable() {
        let key = Key::server("http://k:5000/v3", "p", "s");
        let made = lease(&key.lease_name(), &key, &holder("uid-1"));
        assert_eq!(found(&made, &holder("uid-1")), Found::Ours);
        // A resource of the same name made again has another UID: it is not the holder.
        assert_eq!(found(&made, &holder("uid-2")), Found::Theirs(holder("uid-1")));
        assert_eq!(made.spec.as_ref().unwrap().holder_identity.as_deref(), Some("InstanceMigration team-a/web"));
        assert_eq!(made.annotations()[CLAIMED], "server s of project p at http://k:5000");
        let mut edited = made.clone();
        edited.annotations_mut().remove(HOLDER_NAME);
        assert_eq!(found(&edited, &holder("uid-1")), Found::Unreadable);
    }
}
