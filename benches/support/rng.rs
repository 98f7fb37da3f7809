//! The benches' seeded random stream (SplitMix64): no dependency, and the
//! same stream on every machine, so two runs measure the same events.
//! Included by each bench with `#[path = "support/rng.rs"] mod rng;`;
//! each uses only part of it.
#![allow(dead_code)]

/// SplitMix64.
///
/// ```ignore
/// let mut rng = Rng(7);
/// let coin = rng.chance(0.5);
/// ```
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (1.0 - self.unit(), self.unit());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// SplitMix64's output function: a well-mixed hash of one `u64`.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A UUID-shaped id (version 4 layout, 36 characters): random bits `r`,
/// then a 12-bit `clock` field (masked here) and a 48-bit `node`.
pub fn uuid(r: u64, clock: u64, node: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        r as u32,
        (r >> 32) as u16,
        (r >> 48) & 0xfff,
        clock & 0xfff,
        node
    )
}
