//! Which input partition an agent's events land in: the producer's
//! partitioner applied to the key (the agent id), computed here exactly as
//! librdkafka computes it, so the HTTP API can say where an agent lives
//! without asking anyone.
//!
//! Producers choose the partitioner, not the job. The job assumes the one
//! its own producer is configured with (librdkafka's `partitioner`
//! property in `kafka.properties` / `kafka.producer_properties`), which is
//! also what `breakwater chaos` produces with. Unset, that is librdkafka's
//! default `consistent_random` (CRC-32 of the key), shared by every
//! librdkafka client (confluent-kafka for Python, Go and .NET, kcat). Java
//! producers hash with murmur2: set `partitioner: murmur2_random` for a
//! fleet that produces from the JVM.

/// A keyed partitioner of librdkafka's `partitioner` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// `consistent`, `consistent_random` (the default): CRC-32 of the key.
    Crc32,
    /// `murmur2`, `murmur2_random`: the Java client's default.
    Murmur2,
    /// `fnv1a`, `fnv1a_random`: Sarama's (Go) hash partitioner.
    Fnv1a,
}

impl Partitioner {
    /// The partitioner named by librdkafka's `partitioner` property; `None`
    /// for `random` or an unknown name, where no key decides the partition.
    ///
    /// ```
    /// use breakwater::kafka::partitioner::Partitioner;
    /// assert_eq!(Partitioner::from_property(None), Some(Partitioner::Crc32));
    /// assert_eq!(Partitioner::from_property(Some("murmur2_random")), Some(Partitioner::Murmur2));
    /// assert_eq!(Partitioner::from_property(Some("random")), None);
    /// ```
    pub fn from_property(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("consistent_random") {
            "consistent" | "consistent_random" => Some(Partitioner::Crc32),
            "murmur2" | "murmur2_random" => Some(Partitioner::Murmur2),
            "fnv1a" | "fnv1a_random" => Some(Partitioner::Fnv1a),
            _ => None,
        }
    }

    /// The partition of a non-empty `key` among `partitions` (> 0).
    ///
    /// ```
    /// use breakwater::kafka::partitioner::Partitioner;
    /// // The Java client puts "kafka" in partition 580 of 1000 (murmur2).
    /// assert_eq!(Partitioner::Murmur2.partition(b"kafka", 1000), 580);
    /// ```
    pub fn partition(self, key: &[u8], partitions: i32) -> i32 {
        assert!(partitions > 0, "a topic has at least one partition");
        let n = partitions as u32;
        let p = match self {
            Partitioner::Crc32 => crc32(key) % n,
            Partitioner::Murmur2 => (murmur2(key) & 0x7fff_ffff) % n,
            Partitioner::Fnv1a => fnv1a(key) % n,
        };
        p as i32
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and librdkafka's `rd_crc32`).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// MurmurHash2 with Kafka's seed, as Java's `Utils.murmur2` and
/// librdkafka's `rd_murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = 0x9747_b28c_u32 ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// 32-bit FNV-1a, made non-negative as librdkafka's `rd_fnv1a` (Sarama).
fn fnv1a(data: &[u8]) -> u32 {
    let mut h = 0x811C_9DC5_u32;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as i32).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's own unit-test vectors (rdmurmur2.c, rdfnv1a.c).
    const KEYS: [&str; 11] = [
        "kafka",
        "giberish123456789",
        "1234",
        "234",
        "34",
        "4",
        "PreAmbleWillBeRemoved,ThePrePartThatIs",
        "reAmbleWillBeRemoved,ThePrePartThatIs",
        "eAmbleWillBeRemoved,ThePrePartThatIs",
        "AmbleWillBeRemoved,ThePrePartThatIs",
        "",
    ];

    #[test]
    fn murmur2_matches_the_java_client() {
        let java = [
            0xd067cf64, 0x8f552b0c, 0x9fc97b14, 0xe7c009ca, 0x873930da, 0x5a4b5ca1, 0x78424f1c,
            0x4a62b377, 0xe0e4e09e, 0x62b8b43f, 0x106e08d9,
        ];
        for (k, want) in KEYS.iter().zip(java) {
            assert_eq!(murmur2(k.as_bytes()), want, "{k:?}");
        }
    }

    #[test]
    fn fnv1a_matches_go() {
        let go = [
            0xd33c4e1, 0x77a58295, 0x23bdd03, 0x2dea3cd2, 0x740fa83e, 0x310ca263, 0x65cbd69c,
            0x6e49c79a, 0x69eed356, 0x6abcc023, 0x7ee3623b,
        ];
        for (k, want) in KEYS.iter().zip(go) {
            assert_eq!(fnv1a(k.as_bytes()), want, "{k:?}");
        }
    }

    #[test]
    fn crc32_is_the_zlib_checksum() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
