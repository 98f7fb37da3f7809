//! Writer schemas by Confluent schema id and by fingerprint, each parsed,
//! checked and prepared once.
//!
//! Where a schema id's schema comes from: the registry when one is
//! configured (it is then the only authority on ids); otherwise
//! `input.schema_ids` (files), and `input.default_schema_id` for the bundled
//! `schemas/task_event.avsc`. Fingerprints (single-object encoding) are known
//! for the bundled schema, every configured file, and every schema learned
//! from the registry.
//!
//! Failures are remembered too. An id the registry does not have, or whose
//! schema cannot be read as a task event, is kept in a bounded negative
//! cache (`registry.negative_cache_size` ids, oldest forgotten first) for
//! `registry.negative_cache_ttl`, so a flood of records with garbage ids asks
//! the registry about each id at most once per TTL. When the registry cannot
//! be reached (timeout, refused connection, HTTP 5xx, 401/403), no id is
//! asked about for a back-off that starts at 1 s and doubles up to 30 s:
//! records of unknown ids then fail at once with a transient
//! [`DecodeError::Registry`] instead of each waiting for a timeout.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use apache_avro::Schema;

use super::{AvroDatumDecoder, AvroSchemas, DecodeError};
use crate::config::InputSettings;
use crate::registry::{RegistryError, SchemaRegistry};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Prepared decoders by schema id and by fingerprint. See the module docs.
pub struct WriterSchemas {
    /// One per distinct writer schema (by canonical form).
    decoders: Vec<AvroDatumDecoder>,
    by_id: HashMap<u32, usize>,
    by_fingerprint: HashMap<u64, usize>,
    /// The last id looked up: most topics have one writer schema at a time.
    last_id: Option<(u32, usize)>,
    registry: Option<Registry>,
}

impl std::fmt::Debug for WriterSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&u32> = self.by_id.keys().collect();
        ids.sort_unstable();
        f.debug_struct("WriterSchemas")
            .field("schemas", &self.decoders.len())
            .field("ids", &ids)
            .field(
                "registry",
                &self
                    .registry
                    .as_ref()
                    .map(|r| r.client.settings().url.as_str()),
            )
            .finish()
    }
}

/// The registry, and what it told us that did not work out.
struct Registry {
    client: SchemaRegistry,
    failed: NegativeCache,
    /// Set while the registry is considered unreachable.
    backoff: Option<Backoff>,
}

struct Backoff {
    until: Instant,
    wait: Duration,
    error: String,
}

impl WriterSchemas {
    /// Prepares the bundled schema and every configured file (refusing one
    /// that cannot be read as a task event), and keeps the registry client.
    pub fn new(
        input: &InputSettings,
        registry: Option<SchemaRegistry>,
    ) -> Result<Self, DecodeError> {
        let mut schemas = WriterSchemas {
            decoders: Vec::new(),
            by_id: HashMap::new(),
            by_fingerprint: HashMap::new(),
            last_id: None,
            registry: registry.map(|client| Registry {
                failed: NegativeCache::new(
                    client.settings().negative_cache_size,
                    client.settings().negative_cache_ttl,
                ),
                client,
                backoff: None,
            }),
        };
        let bundled = schemas.learn(AvroSchemas::task_event(), "bundled task_event.avsc")?;
        if let Some(id) = input.default_schema_id {
            schemas.by_id.insert(id, bundled);
        }
        for (&id, file) in &input.schema_ids {
            let writer = format!("{} ({})", file.key, file.path.display());
            let index = schemas.learn(&file.schema, &writer)?;
            schemas.by_id.insert(id, index);
        }
        for file in &input.schema_files {
            let writer = format!("{} ({})", file.key, file.path.display());
            schemas.learn(&file.schema, &writer)?;
        }
        Ok(schemas)
    }

    /// Adds a writer schema, known by its fingerprint from now on; returns
    /// its decoder's index. `writer` names it in errors.
    fn learn(&mut self, schema: &Schema, writer: &str) -> Result<usize, DecodeError> {
        let decoder = AvroDatumDecoder::named(schema, writer)?;
        let fingerprint = decoder.fingerprint();
        if let Some(&index) = self.by_fingerprint.get(&fingerprint) {
            return Ok(index);
        }
        self.decoders.push(decoder);
        let index = self.decoders.len() - 1;
        self.by_fingerprint.insert(fingerprint, index);
        Ok(index)
    }

    /// How many distinct writer schemas are known.
    pub fn len(&self) -> usize {
        self.decoders.len()
    }

    /// Never: the bundled schema is always known.
    pub fn is_empty(&self) -> bool {
        self.decoders.is_empty()
    }

    /// The decoder for a single-object record's writer schema fingerprint.
    pub fn by_fingerprint(&self, fingerprint: u64) -> Result<&AvroDatumDecoder, DecodeError> {
        match self.by_fingerprint.get(&fingerprint) {
            Some(&index) => Ok(&self.decoders[index]),
            None => Err(DecodeError::UnknownFingerprint {
                fingerprint,
                known: self.decoders.len(),
            }),
        }
    }

    /// The decoder for a Confluent schema id. With a registry, the first
    /// lookup of an id may block for one request (up to `registry.timeout`).
    #[inline]
    pub fn by_id(&mut self, id: u32) -> Result<&AvroDatumDecoder, DecodeError> {
        if let Some((last, index)) = self.last_id {
            if last == id {
                return Ok(&self.decoders[index]);
            }
        }
        self.by_id_uncached(id)
    }

    /// [`by_id`](Self::by_id) for another id than the last.
    fn by_id_uncached(&mut self, id: u32) -> Result<&AvroDatumDecoder, DecodeError> {
        let index = match self.by_id.get(&id) {
            Some(&index) => index,
            None => self.fetch(id)?,
        };
        self.last_id = Some((id, index));
        Ok(&self.decoders[index])
    }

    /// Asks the registry for an unknown id (or explains why not).
    fn fetch(&mut self, id: u32) -> Result<usize, DecodeError> {
        let Some(registry) = &mut self.registry else {
            return Err(self.not_configured(id));
        };
        let now = Instant::now();
        if let Some(error) = registry.failed.get(id, now) {
            return Err(error.clone());
        }
        if let Some(b) = &registry.backoff {
            if now < b.until {
                let left = humantime::format_duration(Duration::from_secs(
                    (b.until - now).as_secs_f64().ceil() as u64,
                ));
                return Err(DecodeError::Registry(format!(
                    "{} (not asking again for {left})",
                    b.error
                )));
            }
        }
        let fetched = registry.client.schema_by_id(id);
        let schema = match fetched {
            Ok(schema) => {
                registry.backoff = None;
                schema
            }
            Err(RegistryError::NotFound { status, message }) => {
                let reason = format!("registry answered {status}{}", parenthesized(&message));
                let error = DecodeError::UnknownSchemaId { id, reason };
                registry.failed.insert(id, error.clone(), now);
                return Err(error);
            }
            Err(e) => {
                let error = e.to_string();
                let wait = registry
                    .backoff
                    .as_ref()
                    .map_or(BACKOFF_START, |b| (b.wait * 2).min(BACKOFF_MAX));
                registry.backoff = Some(Backoff {
                    until: now + wait,
                    wait,
                    error: error.clone(),
                });
                return Err(DecodeError::Registry(error));
            }
        };
        let writer = format!("id {id}");
        let learned = if schema.is_avro() {
            Schema::parse_str(&schema.schema)
                .map_err(|e| DecodeError::IncompatibleSchema {
                    writer: writer.clone(),
                    reason: format!("the registry's schema does not parse: {e}"),
                })
                .and_then(|parsed| self.learn(&parsed, &writer))
        } else {
            Err(DecodeError::IncompatibleSchema {
                writer,
                reason: format!(
                    "it is a {} schema, not Avro",
                    schema.schema_type.as_deref().unwrap_or("?")
                ),
            })
        };
        match learned {
            Ok(index) => {
                self.by_id.insert(id, index);
                Ok(index)
            }
            Err(error) => {
                let registry = self.registry.as_mut().expect("checked above");
                registry.failed.insert(id, error.clone(), now);
                Err(error)
            }
        }
    }

    fn not_configured(&self, id: u32) -> DecodeError {
        let mut known: Vec<u32> = self.by_id.keys().copied().collect();
        known.sort_unstable();
        let listed = match known.len() {
            0 => "none".to_string(),
            n => {
                let shown: Vec<String> = known.iter().take(10).map(u32::to_string).collect();
                let more = if n > 10 { ", …" } else { "" };
                format!("{}{more}", shown.join(", "))
            }
        };
        DecodeError::UnknownSchemaId {
            id,
            reason: format!(
                "no schema registry is configured, and neither input.schema_ids nor \
                 input.default_schema_id names it (known ids: {listed})"
            ),
        }
    }
}

fn parenthesized(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// Failed ids with their error, each for a while; at most `capacity`, the
/// oldest forgotten first.
struct NegativeCache {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<u32, (DecodeError, Instant, u64)>,
    /// Insertion order, with a generation to skip entries replaced since.
    order: VecDeque<(u32, u64)>,
    generation: u64,
}

impl NegativeCache {
    fn new(capacity: usize, ttl: Duration) -> Self {
        NegativeCache {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
        }
    }

    fn get(&mut self, id: u32, now: Instant) -> Option<&DecodeError> {
        let expired = match self.entries.get(&id) {
            None => return None,
            Some((_, until, _)) => now >= *until,
        };
        if expired {
            self.entries.remove(&id);
            return None;
        }
        self.entries.get(&id).map(|(error, _, _)| error)
    }

    fn insert(&mut self, id: u32, error: DecodeError, now: Instant) {
        self.generation += 1;
        self.entries
            .insert(id, (error, now + self.ttl, self.generation));
        self.order.push_back((id, self.generation));
        while self.entries.len() > self.capacity {
            let Some((old, generation)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&old).is_some_and(|e| e.2 == generation) {
                self.entries.remove(&old);
            }
        }
        // Entries replaced or expired leave stale order slots; keep them few.
        if self.order.len() > 2 * self.capacity + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(id, generation)| entries.get(id).is_some_and(|e| e.2 == *generation));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(id: u32) -> DecodeError {
        DecodeError::UnknownSchemaId {
            id,
            reason: "test".into(),
        }
    }

    #[test]
    fn negative_cache_is_bounded_and_expires() {
        let t0 = Instant::now();
        let mut cache = NegativeCache::new(3, Duration::from_secs(10));
        for id in 0..5 {
            cache.insert(id, error(id), t0);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(0, t0).is_none() && cache.get(1, t0).is_none());
        assert_eq!(cache.get(4, t0), Some(&error(4)));
        // Re-inserting refreshes without counting twice.
        cache.insert(2, error(2), t0 + Duration::from_secs(5));
        cache.insert(5, error(5), t0);
        assert!(cache.get(2, t0).is_some(), "2 was refreshed, 3 was older");
        assert!(cache.get(3, t0).is_none());
        assert!(
            cache.get(4, t0 + Duration::from_secs(10)).is_none(),
            "expired"
        );
        assert!(cache.get(2, t0 + Duration::from_secs(10)).is_some());
        for id in 100..10_000 {
            cache.insert(id, error(id), t0);
        }
        assert!(cache.order.len() <= 2 * 3 + 16);
    }

    #[test]
    fn without_a_registry_ids_come_from_the_configuration() {
        let input = InputSettings {
            default_schema_id: Some(3),
            ..InputSettings::default()
        };
        let mut schemas = WriterSchemas::new(&input, None).unwrap();
        assert_eq!(schemas.len(), 1);
        assert!(!schemas.is_empty());
        assert!(schemas.by_id(3).is_ok());
        assert_eq!(
            schemas.by_id(4).err().unwrap().to_string(),
            "schema id 4 is not registered: no schema registry is configured, and neither \
             input.schema_ids nor input.default_schema_id names it (known ids: 3)"
        );
        assert!(schemas
            .by_fingerprint(AvroSchemas::task_event_fingerprint())
            .is_ok());
        let e = schemas.by_fingerprint(0x1234).err().unwrap();
        assert_eq!(e.kind(), "unknown_schema");
        assert!(
            e.to_string()
                .contains("fingerprint 3412000000000000 (as written)"),
            "{e}"
        );
    }
}
