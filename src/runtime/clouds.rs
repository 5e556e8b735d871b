//! OpenStack sessions for the controllers: built from the Secrets that resources reference,
//! cached (so tokens and the negotiated microversion are reused), and a per-cloud limit on
//! concurrent changes so that a large upgrade cannot overload Nova or Glance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::CloudRef;
use crate::openstack::session::RequestObserver;
use crate::openstack::{Session, clouds};

/// A session is rebuilt from its Secret at least this often, so that rotated credentials are
/// picked up without a restart.
const SESSION_TTL: Duration = Duration::from_secs(300);

/// Why a cloud reference cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("Secret {namespace}/{name} does not exist")]
    SecretNotFound { namespace: String, name: String },
    /// The operator's RBAC does not let it read the Secret (the chart's `rbac.secretNames`).
    #[error("Secret {namespace}/{name} may not be read by the operator (it may read only the Secrets its RBAC names)")]
    SecretNotAllowed { namespace: String, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl CloudError {
    /// The condition reason of a resource refused for this.
    pub fn reason(&self) -> &'static str {
        match self {
            CloudError::SecretNotFound { .. } => "SecretNotFound",
            CloudError::SecretNotAllowed { .. } => "SecretNotAllowed",
            CloudError::Invalid(_) => "CloudInvalid",
            CloudError::Kube(_) => "KubernetesError",
        }
    }
}

/// Namespace, Secret, cloud, and the project the session acts in when it is not the one of
/// the credentials.
type Key = (String, String, String, Option<String>);

fn key(namespace: &str, cloud: &CloudRef, project_id: Option<&str>) -> Key {
    (namespace.to_string(), cloud.secret_name.clone(), cloud.cloud.clone(), project_id.map(str::to_string))
}

pub struct Clouds {
    client: kube::Client,
    observer: RequestObserver,
    sessions: Mutex<HashMap<Key, (Instant, Arc<Session>)>>,
    limits: ChangeLimits,
}

/// At most so many OpenStack-changing requests in flight per cloud (by its auth URL), across
/// every drain and migration of the operator.
pub struct ChangeLimits {
    per_cloud: usize,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl ChangeLimits {
    pub fn new(per_cloud: usize) -> Self {
        ChangeLimits { per_cloud: per_cloud.max(1), semaphores: Mutex::default() }
    }

    /// Waits for a turn to change something in `cloud`.
    pub async fn permit(&self, cloud: &str) -> OwnedSemaphorePermit {
        let semaphore = self
            .semaphores
            .lock()
            .unwrap()
            .entry(cloud.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_cloud)))
            .clone();
        semaphore.acquire_owned().await.expect("the semaphore is never closed")
    }
}

impl Clouds {
    pub fn new(client: kube::Client, observer: RequestObserver, changes_per_cloud: usize) -> Self {
        Clouds { client, observer, sessions: Mutex::default(), limits: ChangeLimits::new(changes_per_cloud) }
    }

    /// The session for a cloud reference in a namespace.
    pub async fn session(&self, namespace: &str, cloud: &CloudRef) -> Result<Arc<Session>, CloudError> {
        let key = key(namespace, cloud, None);
        if let Some(session) = self.cached(&key) {
            return Ok(session);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let (namespace, name) = (namespace.to_string(), cloud.secret_name.clone());
        let secret = match secrets.get_opt(&cloud.secret_name).await {
            Err(kube::Error::Api(status)) if status.code == 403 => {
                Err(CloudError::SecretNotAllowed { namespace, name })
            }
            Err(e) => Err(e.into()),
            Ok(None) => Err(CloudError::SecretNotFound { namespace, name }),
            Ok(Some(secret)) => Ok(secret),
        }?;
        let mut data: std::collections::BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        let (config, cacert) = clouds::from_secret(&cloud.secret_name, &data, &cloud.cloud)
            .map_err(|e| CloudError::Invalid(e.to_string()))?;
        let session = Session::new(config, cacert.as_deref())
            .map_err(|e| CloudError::Invalid(e.to_string()))?
            .with_observer(self.observer.clone());
        Ok(self.keep(key, session))
    }

    /// The session for a cloud reference's credentials scoped to another project: to act on a
    /// server as its project does (a snapshot and a replacement belong to the project that
    /// makes them).
    pub async fn session_in_project(
        &self,
        namespace: &str,
        cloud: &CloudRef,
        project_id: &str,
    ) -> Result<Arc<Session>, CloudError> {
        let key = key(namespace, cloud, Some(project_id));
        if let Some(session) = self.cached(&key) {
            return Ok(session);
        }
        let base = self.session(namespace, cloud).await?;
        self.in_project(namespace, cloud, &base, project_id).map_err(|e| CloudError::Invalid(e.to_string()))
    }

    /// Like [`session_in_project`](Self::session_in_project), from the reference's session
    /// at hand (so that nothing is read from Kubernetes).
    pub fn in_project(
        &self,
        namespace: &str,
        cloud: &CloudRef,
        base: &Session,
        project_id: &str,
    ) -> Result<Arc<Session>, crate::openstack::Error> {
        let key = key(namespace, cloud, Some(project_id));
        match self.cached(&key) {
            Some(session) => Ok(session),
            None => Ok(self.keep(key, base.in_project(project_id)?)),
        }
    }

    fn cached(&self, key: &Key) -> Option<Arc<Session>> {
        let sessions = self.sessions.lock().unwrap();
        sessions.get(key).filter(|(built, _)| built.elapsed() < SESSION_TTL).map(|(_, session)| session.clone())
    }

    /// Keeps a session just built, unless a racing reconciliation kept one first: each session
    /// authenticates to Keystone on its first request, and a restarted operator would
    /// otherwise log in once per resource at once.
    fn keep(&self, key: Key, session: Session) -> Arc<Session> {
        let mut sessions = self.sessions.lock().unwrap();
        // Sessions of projects no longer acted in go: the map holds only what is in use.
        sessions.retain(|_, (built, _)| built.elapsed() < SESSION_TTL);
        match sessions.get(&key) {
            Some((built, first)) if built.elapsed() < SESSION_TTL => first.clone(),
            _ => {
                let session = Arc::new(session);
                sessions.insert(key, (Instant::now(), session.clone()));
                session
            }
        }
    }

    /// Forgets a cloud reference's sessions (in every project), e.g. after its credentials
    /// were refused.
    pub fn forget(&self, namespace: &str, cloud: &CloudRef) {
        self.sessions.lock().unwrap().retain(|(ns, secret, name, _), _| {
            (ns.as_str(), secret, name) != (namespace, &cloud.secret_name, &cloud.cloud)
        });
    }

    /// Waits for a turn to change something in the cloud behind `session`.
    pub async fn change_permit(&self, session: &Session) -> OwnedSemaphorePermit {
        self.limits.permit(&session.config().auth.auth_url).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    use super::{ChangeLimits, Clouds};
    use crate::api::CloudRef;
    use crate::openstack::fake::{Call, FakeCloud, ok, status};

    /// One fake serving both the Kubernetes API (the Secret `clouds`) and OpenStack, and the
    /// operator's sessions of it.
    async fn fake_clouds() -> (FakeCloud, Arc<Clouds>, CloudRef) {
        let secret = Arc::new(Mutex::new(json!(null)));
        let served = secret.clone();
        let cloud = FakeCloud::start("2.95", move |call: &Call| match call.path.as_str() {
            "/api/v1/namespaces/default/secrets/clouds" => ok(served.lock().unwrap().clone()),
            "/api/v1/namespaces/default/secrets/forbidden" => {
                let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                    "code": 403, "message": "secrets \"forbidden\" is forbidden"});
                (403, vec![], forbidden.to_string())
            }
            p if p.starts_with("/v2.1/flavors") => ok(json!({"flavors": []})),
            _ => status(404, "not scripted"),
        })
        .await;
        let yaml = cloud.clouds_yaml("secret");
        let data = [("clouds.yaml".to_string(), ByteString(yaml.into_bytes()))].into();
        let mut body = serde_json::to_value(Secret { data: Some(data), ..Default::default() }).unwrap();
        body["metadata"] = json!({"name": "clouds", "namespace": "default"});
        *secret.lock().unwrap() = body;
        crate::openstack::session::install_tls_provider();
        let url = format!("http://{}", cloud.addr()).parse().unwrap();
        let client = kube::Client::try_from(kube::Config::new(url)).unwrap();
        let clouds = Arc::new(Clouds::new(client, Arc::new(|_, _| {}), 8));
        (cloud, clouds, CloudRef { secret_name: "clouds".into(), cloud: "fake".into() })
    }

    #[tokio::test]
    async fn resources_resuming_at_once_share_one_session_and_one_login() {
        let (cloud, clouds, reference) = fake_clouds().await;
        // As after a restart: every migration's first reconcile asks at once.
        let resumed = (0..16).map(|_| {
            let (clouds, reference) = (clouds.clone(), reference.clone());
            tokio::spawn(async move {
                let session = clouds.session("default", &reference).await.unwrap();
                session.compute().flavors().await.unwrap();
                session
            })
        });
        let sessions: Vec<_> = futures::future::join_all(resumed).await.into_iter().map(Result::unwrap).collect();
        assert!(sessions.iter().all(|s| Arc::ptr_eq(s, &sessions[0])), "each resource built its own session");
        assert_eq!(cloud.tokens_issued(), 1, "one login to Keystone, not one per resource");
    }

    #[tokio::test]
    async fn sessions_in_other_projects_are_kept_apart_and_forgotten_with_the_credentials() {
        let (_cloud, clouds, reference) = fake_clouds().await;
        let own = clouds.session("default", &reference).await.unwrap();
        let in_p1 = clouds.session_in_project("default", &reference, "p1").await.unwrap();
        assert_eq!(in_p1.config().auth.project_id.as_deref(), Some("p1"));
        assert!(!Arc::ptr_eq(&own, &in_p1));
        assert!(Arc::ptr_eq(&in_p1, &clouds.session_in_project("default", &reference, "p1").await.unwrap()));
        let in_p2 = clouds.session_in_project("default", &reference, "p2").await.unwrap();
        assert!(!Arc::ptr_eq(&in_p1, &in_p2));

        // Refused credentials are forgotten in every project.
        clouds.forget("default", &reference);
        assert!(!Arc::ptr_eq(&in_p1, &clouds.session_in_project("default", &reference, "p1").await.unwrap()));
        assert!(!Arc::ptr_eq(&own, &clouds.session("default", &reference).await.unwrap()));
    }

    #[tokio::test]
    async fn a_secret_the_operator_may_not_read_is_refused_as_not_allowed() {
        let (_cloud, clouds, reference) = fake_clouds().await;
        let forbidden = CloudRef { secret_name: "forbidden".into(), ..reference };
        let error = clouds.session("default", &forbidden).await.unwrap_err();
        assert_eq!(error.reason(), "SecretNotAllowed");
        assert!(error.to_string().starts_with("Secret default/forbidden may not be read by the operator"), "{error}");
    }

    #[tokio::test]
    async fn changes_wait_for_a_turn_per_cloud() {
        let limits = ChangeLimits::new(2);
        let first = limits.permit("https://old/v3").await;
        let _second = limits.permit("https://old/v3").await;
        let third = tokio::time::timeout(Duration::from_millis(50), limits.permit("https://old/v3")).await;
        assert!(third.is_err(), "a third change ran beside two with a limit of 2");
        // Another cloud has its own turns.
        let _other = tokio::time::timeout(Duration::from_millis(50), limits.permit("https://new/v3")).await.unwrap();
        drop(first);
        let _third = tokio::time::timeout(Duration::from_secs(5), limits.permit("https://old/v3")).await.unwrap();
    }
}
