//! The order in which the operator takes up its resources after a (re)start.
//!
//! A watch lists its objects in name order, and a controller gives its reconcile slots in the
//! order it is handed the objects. With more resources than slots, every restart would give the
//! same few the first turns, and an operator restarted often (a crash loop, a busy node) would
//! leave the others waiting. Each listing is handed on least recently served first instead.

use std::hash::Hash;

use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// The objects a watch applies, as `applied_objects` gives them, except that those of each
/// listing (at start, and after a relist) come in the order of `served_at`, never-served ones
/// (`None`) first. `events` must have passed through the reflector that fills `store`.
pub fn applied_least_recently_served_first<K, S, T, F>(
    events: S,
    store: Store<K>,
    served_at: F,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    T: Ord,
    F: Fn(&K) -> Option<T>,
{
    events
        .scan(Vec::new(), move |listed: &mut Vec<(Option<T>, ObjectRef<K>)>, event| {
            let now: Vec<Next<K>> = match event {
                Err(error) => vec![Next::Object(Err(error))],
                Ok(watcher::Event::Apply(obj)) => vec![Next::Object(Ok(obj))],
                Ok(watcher::Event::Delete(_)) => vec![],
                Ok(watcher::Event::Init) => {
                    listed.clear();
                    vec![]
                }
                // Only a reference is kept: the reflector's store holds the object.
                Ok(watcher::Event::InitApply(obj)) => {
                    listed.push((served_at(&obj), ObjectRef::from_obj(&obj)));
                    vec![]
                }
                // Taken, not drained: a listing of many objects leaves no room behind.
                Ok(watcher::Event::InitDone) => {
                    listed.sort_by(|a, b| a.0.cmp(&b.0));
                    std::mem::take(listed).into_iter().map(|(_, r)| Next::Listed(r)).collect()
                }
            };
            futures::future::ready(Some(stream::iter(now)))
        })
        .flatten()
        // A listed object is copied out of the store only as it is taken: copying a whole
        // listing at once would hold a second copy of every object.
        .filter_map(move |next| {
            futures::future::ready(match next {
                Next::Object(obj) => Some(obj),
                Next::Listed(r) => store.get(&r).map(|obj| Ok((*obj).clone())),
            })
        })
}

/// What comes next: an object as the watch brought it, or one of a listing, by reference.
enum Next<K: kube::Resource> {
    Object(Result<K, watcher::Error>),
    Listed(ObjectRef<K>),
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt, stream};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;
    use kube::runtime::{WatchStreamExt, reflector, watcher::Event};

    use super::applied_least_recently_served_first;

    /// A ConfigMap named `name`, last served at `served` (its `data.served`), if ever.
    fn object(name: &str, served: Option<u32>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            data: served.map(|s| [("served".to_string(), s.to_string())].into()),
            ..Default::default()
        }
    }

    fn served(cm: &ConfigMap) -> Option<u32> {
        cm.data.as_ref().map(|d| d["served"].parse().unwrap())
    }

    #[tokio::test]
    async fn each_listing_comes_least_recently_served_first_and_later_changes_as_they_come() {
        let listing = |objects: Vec<ConfigMap>| {
            std::iter::once(Event::Init)
                .chain(objects.into_iter().map(Event::InitApply))
                .chain(std::iter::once(Event::InitDone))
        };
        let events = listing(vec![object("a", Some(30)), object("b", None), object("c", Some(10))])
            .chain([Event::Apply(object("d", Some(50))), Event::Delete(object("a", Some(30)))])
            // A relist (the watch restarted): served again in between, so the order changes.
            .chain(listing(vec![object("b", Some(60)), object("c", Some(40)), object("d", None)]))
            .map(Ok);
        let (store, writer) = reflector::store();
        let names: Vec<String> =
            applied_least_recently_served_first(stream::iter(events).reflect(writer), store, served)
                .map(|obj| obj.unwrap().metadata.name.unwrap())
                .collect()
                .await;
        assert_eq!(names, ["b", "c", "a", "d", "d", "c", "b"]);
    }
}
