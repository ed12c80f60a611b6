//! The data a memory store keeps, per namespace: metric series in read
//! order, the event log, idempotency keys, and records with their indexes.
//! The domain modules read and change it under the store's one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use persistkit_core::backend::*;
use persistkit_core::*;
use serde_json::Value;

/// Everything, behind the store's lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) next_seq: u64,
    pub(crate) metrics: HashMap<String, BTreeMap<MetricOrder, StoredMetric>>,
    pub(crate) events: HashMap<String, Log>,
    pub(crate) keys: HashMap<String, Keys>,
    pub(crate) records: HashMap<String, Records>,
}

/// Metric points ordered as reads return them.
pub(crate) type MetricOrder = (Timestamp, String, String, u64);

/// Idempotency keys by (scope, key).
pub(crate) type Keys = BTreeMap<(String, String), IdempotencyEntry>;

#[derive(Debug, Default, Clone)]
pub(crate) struct Log {
    pub(crate) last_position: u64,
    pub(crate) by_position: BTreeMap<u64, Event>,
    pub(crate) by_time: BTreeMap<(Timestamp, u64), u64>,
    /// (kind, occurred_at, digest) → (id, position).
    pub(crate) dedupe: HashMap<(String, Timestamp, String), (u64, u64)>,
}

impl Log {
    /// Append `events`, all of them or (on a full log) none.
    pub(crate) fn append(&mut self, ns: &str, events: &[PreparedEvent]) -> Result<Vec<Appended>> {
        let log = self;
        // Plan the whole batch first, so a full log rejects all of it.
        let mut head = log.last_position;
        let mut planned: HashMap<(String, Timestamp, String), (u64, u64)> = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let key = (e.kind.clone(), e.occurred_at, e.digest.clone());
            if let Some(&(id, position)) = log.dedupe.get(&key).or_else(|| planned.get(&key)) {
                out.push(Appended {
                    id,
                    position,
                    duplicate: true,
                });
                continue;
            }
            head = next_position(ns, head)?;
            planned.insert(key, (head, head));
            out.push(Appended {
                id: head,
                position: head,
                duplicate: false,
            });
        }
        for (e, a) in events.iter().zip(&out).filter(|(_, a)| !a.duplicate) {
            log.dedupe.insert(
                (e.kind.clone(), e.occurred_at, e.digest.clone()),
                (a.id, a.position),
            );
            log.by_time.insert((e.occurred_at, a.id), a.position);
            log.by_position.insert(
                a.position,
                Event {
                    id: a.id,
                    position: a.position,
                    kind: e.kind.clone(),
                    occurred_at: e.occurred_at,
                    data: e.data.clone(),
                },
            );
        }
        log.last_position = head;
        Ok(out)
    }
}

/// One namespace's records and the indexes over them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Records {
    pub(crate) by_id: BTreeMap<(String, String), Record>,
    /// (collection, index name) → the index.
    pub(crate) indexes: BTreeMap<(String, String), MemIndex>,
}

#[derive(Debug, Clone)]
pub(crate) struct MemIndex {
    pub(crate) def: Index,
    /// (key, id) of every record of the collection that has a key.
    pub(crate) entries: BTreeSet<(Vec<u8>, String)>,
}

impl Records {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn live(&self, collection: &str, id: &str, now: Timestamp) -> Option<&Record> {
        self.by_id
            .get(&(collection.to_string(), id.to_string()))
            .filter(|r| r.is_live(now))
    }

    pub(crate) fn indexes_of<'a>(
        &'a self,
        collection: &'a str,
    ) -> impl Iterator<Item = &'a MemIndex> {
        self.indexes
            .range((collection.to_string(), String::new())..)
            .take_while(move |((c, _), _)| c == collection)
            .map(|(_, ix)| ix)
    }

    /// The first unique index of `collection` where a live record other
    /// than `id` has `data`'s key: (index name, that record's id).
    pub(crate) fn unique_holder(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Option<(String, String)> {
        self.indexes_of(collection)
            .filter(|ix| ix.def.unique)
            .find_map(|ix| {
                let key = ix.def.key_of(data)?;
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .find(|(_, other)| other != id && self.live(collection, other, now).is_some())
                    .map(|(_, other)| (ix.def.name.clone(), other.clone()))
            })
    }

    /// Records other than `id`, expired at `now`, that hold one of the
    /// unique keys `data` would take.
    pub(crate) fn expired_holders(
        &self,
        collection: &str,
        id: &str,
        data: &Value,
        now: Timestamp,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for ix in self.indexes_of(collection).filter(|ix| ix.def.unique) {
            let Some(key) = ix.def.key_of(data) else {
                continue;
            };
            out.extend(
                ix.entries
                    .range((key.clone(), String::new())..)
                    .take_while(|(k, _)| *k == key)
                    .filter(|(_, other)| other != id && self.live(collection, other, now).is_none())
                    .map(|(_, other)| other.clone()),
            );
        }
        out
    }

    pub(crate) fn remove(&mut self, collection: &str, id: &str) -> Option<Record> {
        let old = self
            .by_id
            .remove(&(collection.to_string(), id.to_string()))?;
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == collection)
        {
            if let Some(key) = ix.def.key_of(&old.data) {
                ix.entries.remove(&(key, id.to_string()));
            }
        }
        Some(old)
    }

    pub(crate) fn insert(&mut self, rec: Record) {
        self.remove(&rec.collection, &rec.id);
        for ix in self
            .indexes
            .values_mut()
            .filter(|ix| ix.def.collection == rec.collection)
        {
            if let Some(key) = ix.def.key_of(&rec.data) {
                ix.entries.insert((key, rec.id.clone()));
            }
        }
        self.by_id
            .insert((rec.collection.clone(), rec.id.clone()), rec);
    }

    /// Remove the records that `keep` rejects, keeping indexes in step;
    /// how many went.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Record) -> bool) -> u64 {
        let gone: Vec<(String, String)> = self
            .by_id
            .iter()
            .filter(|(_, r)| !keep(r))
            .map(|(k, _)| k.clone())
            .collect();
        for (c, id) in &gone {
            self.remove(c, id);
        }
        gone.len() as u64
    }

    pub(crate) fn put(&mut self, put: &PutRecord<'_>, now: Timestamp) -> Result<Record> {
        let (collection, id) = (put.collection, put.id);
        let current = self.live(collection, id, now);
        check_expect(current.map(|r| r.version), put.expect)?;
        if let Some((index, holder)) = self.unique_holder(collection, id, put.data, now) {
            return Err(unique_conflict(collection, &index, &holder));
        }
        // Expired records holding one of the keys go, as they do in the
        // SQL backends, whose unique indexes would refuse the write.
        for other in self.expired_holders(collection, id, put.data, now) {
            self.remove(collection, &other);
        }
        let current = self.live(collection, id, now);
        let rec = match current {
            Some(r) => Record {
                data: put.data.clone(),
                version: next_version(collection, id, r.version)?,
                updated_at: now,
                expires_at: put.expires_at,
                ..r.clone()
            },
            None => Record {
                collection: collection.into(),
                id: id.into(),
                data: put.data.clone(),
                version: 1,
                created_at: now,
                updated_at: now,
                expires_at: put.expires_at,
            },
        };
        self.insert(rec.clone());
        Ok(rec)
    }

    pub(crate) fn delete(
        &mut self,
        collection: &str,
        id: &str,
        expect: Expect,
        now: Timestamp,
    ) -> Result<()> {
        let current = self.live(collection, id, now).map(|r| r.version);
        match (current, expect) {
            (None, Expect::Version(_)) => Err(expectation_error(expect, None)),
            (None, _) => Err(Error::not_found(format!(
                "record {collection:?}/{id:?} does not exist"
            ))),
            (Some(_), _) => {
                check_expect(current, expect)?;
                self.remove(collection, id);
                Ok(())
            }
        }
    }

    pub(crate) fn create_index(&mut self, index: &Index, now: Timestamp) -> Result<bool> {
        let name = (index.collection.clone(), index.name.clone());
        if let Some(existing) = self.indexes.get(&name) {
            return if existing.def == *index {
                Ok(false)
            } else {
                Err(index_differs(&existing.def, index))
            };
        }
        let coll = index.collection.as_str();
        self.retain(|r| r.collection != coll || r.is_live(now));
        let mut entries = BTreeSet::new();
        for r in self.by_id.values().filter(|r| r.collection == coll) {
            if let Some(key) = index.key_of(&r.data) {
                if index.unique {
                    if let Some((_, other)) = entries
                        .range((key.clone(), String::new())..)
                        .find(|(k, _)| *k == key)
                    {
                        return Err(unique_conflict(coll, &index.name, other));
                    }
                }
                entries.insert((key, r.id.clone()));
            }
        }
        self.indexes.insert(
            name,
            MemIndex {
                def: index.clone(),
                entries,
            },
        );
        Ok(true)
    }
}
