//! Unguessable tokens (for `requestState` the gateway mints) from a ChaCha20 keystream.
//!
//! The core reads no OS randomness (it would be an import in wasm); the host seeds it once with 32
//! random bytes ([`crate::Gateway::seed`]). Unseeded (in tests) tokens are unique but predictable.

use crate::prelude::*;

/// ChaCha20 block function (RFC 8439) used as a keystream generator.
pub struct TokenSource {
    key: [u32; 8],
    counter: u64,
}

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

fn block(key: &[u32; 8], counter: u64, nonce: [u32; 2]) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    s[4..12].copy_from_slice(key);
    s[12] = counter as u32;
    s[13] = (counter >> 32) as u32;
    s[14] = nonce[0];
    s[15] = nonce[1];
    let init = s;
    for _ in 0..10 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    for (x, y) in s.iter_mut().zip(init) {
        *x = x.wrapping_add(y);
    }
    s
}

impl TokenSource {
    pub fn new(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u32::from_le_bytes([seed[4 * i], seed[4 * i + 1], seed[4 * i + 2], seed[4 * i + 3]]);
        }
        TokenSource { key, counter: 0 }
    }

    /// A fresh 128-bit token as 32 lowercase hex digits.
    pub fn next_hex(&mut self) -> String {
        let b = block(&self.key, self.counter, [0x6d63_7067, 0x7774_6f6b]);
        self.counter += 1;
        b[..4].iter().map(|w| format!("{w:08x}")).collect()
    }

    /// A number for jitter (not for secrets: it shares the keystream position with the tokens).
    pub fn next_u64(&mut self) -> u64 {
        let b = block(&self.key, self.counter, [0x6a69_7474, 0x6572_2121]);
        self.counter += 1;
        u64::from(b[0]) | (u64::from(b[1]) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha20_block_matches_rfc8439() {
        // RFC 8439 2.3.2: key 00..1f, counter 1, nonce 000000090000004a00000000 (we put the last
        // two nonce words after a 64-bit counter, so feed the same state words).
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let t = TokenSource::new(seed);
        let out = block(&t.key, 1 | (0x0900_0000u64 << 32), [0x4a00_0000, 0]);
        assert_eq!(out[0], 0xe4e7_f110);
        assert_eq!(out[15], 0x4e3c_50a2);
    }

    #[test]
    fn tokens_differ_per_seed_and_call() {
        let mut a = TokenSource::new([1; 32]);
        let mut b = TokenSource::new([2; 32]);
        let (x, y) = (a.next_hex(), a.next_hex());
        assert_ne!(x, y);
        assert_ne!(x, b.next_hex());
        assert_eq!(x.len(), 32);
    }
}
