//! A 64-bit FNV-1a hash of bytes: stable across processes and builds, unlike `std`'s hasher, so
//! what it gives may be stored.

/// The fingerprint of `bytes`: what tells a state written back unchanged from one that changed
/// (without keeping the bytes), and one keyed call's message from another.
pub(crate) fn fingerprint(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}
