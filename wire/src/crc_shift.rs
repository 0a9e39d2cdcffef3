//! Carrying a CRC-32C over a run of zero bytes in logarithmic time, for patching the CRC
//! of a batch whose header changed without reading its records.
//!
//! Appending a zero byte to a message multiplies its (unconditioned) CRC by x^8 modulo the
//! Castagnoli polynomial, so appending `n` zeros multiplies by x^(8n): one product of
//! 32-bit polynomials per non-zero byte of `n` from a table of x^(8 v 256^i), at most four
//! for any batch.
//! `crc32c::crc32c_combine` does the same with 32x32 bit matrices: about 15 µs per call
//! against well under one here, which is what lets every stamped batch take the patch.

/// The Castagnoli polynomial, bit-reflected as CRC-32C computes it (x^0 is the top bit).
const POLY_REFLECTED: u32 = 0x82F6_3B78;

/// x^0 in the reflected representation.
const ONE: u32 = 1 << 31;

/// `b * x mod P`, in the reflected representation.
const fn mul_x(b: u32) -> u32 {
    if b & 1 != 0 {
        (b >> 1) ^ POLY_REFLECTED
    } else {
        b >> 1
    }
}

/// `REDUCE_X4[v]` = v * x^4 mod P for the polynomials `v` of degree 28 to 31 (the low four
/// bits): what shifting four bits out of a product adds back.
const REDUCE_X4: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut v = 0;
    while v < 16 {
        table[v] = mul_x(mul_x(mul_x(mul_x(v as u32))));
        v += 1;
    }
    table
};

/// `a * b mod P`, in the reflected representation: Horner's rule over the four-bit digits
/// of `a`, highest degree first, with the sixteen multiples of `b` by a digit in a table
/// (about a third of the time of a loop over single bits, twice per stamped batch).
const fn mul_mod(a: u32, b: u32) -> u32 {
    // The bits of a digit of `a`, low to high, hold x^3 .. x^0 of it (reflected order).
    let by = [mul_x(mul_x(mul_x(b))), mul_x(mul_x(b)), mul_x(b), b];
    let mut multiples = [0u32; 16];
    let mut digit: usize = 1;
    while digit < 16 {
        let low = digit & digit.wrapping_neg();
        multiples[digit] = multiples[digit ^ low] ^ by[low.trailing_zeros() as usize];
        digit += 1;
    }
    let mut product = 0u32;
    let mut shift = 0;
    while shift < 32 {
        product = (product >> 4) ^ REDUCE_X4[(product & 0xF) as usize];
        product ^= multiples[((a >> shift) & 0xF) as usize];
        shift += 4;
    }
    product
}

/// Entries of [`X_POW_TWO_POW`]: x^(2^k) for k up to 3 + 8 * 7, the steps of the last
/// byte of a `u64` count in [`X_POW_BYTE_TABLE`].
const POWERS: usize = 60;

/// `X_POW_TWO_POW[k]` = x^(2^k) mod P.
const X_POW_TWO_POW: [u32; POWERS] = {
    let mut table = [0u32; POWERS];
    let mut p = ONE >> 1; // x^1
    let mut k = 0;
    while k < POWERS {
        table[k] = p;
        p = mul_mod(p, p);
        k += 1;
    }
    table
};

/// `X_POW_BYTE_TABLE[i][v]` = x^(8 v 256^i) mod P, for each of the eight bytes of a `u64`
/// count: x^(8n) is the product of one entry per non-zero byte of `n`, so at most four
/// products for any batch (below 2^32 bytes) instead of one per bit of `n`.
const X_POW_BYTE_TABLE: [[u32; 256]; 8] = {
    let mut table = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 8 {
        // x^(8 * 256^i) = x^(2^(3 + 8i))
        let step = X_POW_TWO_POW[3 + 8 * i];
        let mut p = ONE;
        let mut v = 0;
        while v < 256 {
            table[i][v] = p;
            p = mul_mod(p, step);
            v += 1;
        }
        i += 1;
    }
    table
};

/// x^(8 n) mod P.
fn x_pow_bytes(n: u64) -> u32 {
    let mut p = ONE;
    for (i, byte) in n.to_le_bytes().into_iter().enumerate() {
        if byte != 0 {
            let factor = X_POW_BYTE_TABLE[i][usize::from(byte)];
            // The first factor needs no product with x^0 (a batch's length has two or three
            // non-zero bytes, so this saves a third of the products).
            p = if p == ONE { factor } else { mul_mod(factor, p) };
        }
    }
    p
}

/// The unconditioned CRC-32C (no initial or final xor) of a message followed by `zeros`
/// zero bytes, from that of the message alone: what `crc32c_combine(crc, 0, zeros)`
/// returns.
pub fn append_zeros(crc: u32, zeros: u64) -> u32 {
    mul_mod(x_pow_bytes(zeros), crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crate_combine_for_many_lengths_and_values() {
        let mut value: u32 = 0x1234_5678;
        for zeros in (0..70usize).chain([
            255,
            256,
            4096,
            65_537,
            444_000,
            4 << 20,
            1 << 30,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 8193,
        ]) {
            // A cheap generator: odd multiplier, so values vary in every bit.
            value = value.wrapping_mul(0x9E37_79B9).wrapping_add(7);
            assert_eq!(
                append_zeros(value, zeros as u64),
                crc32c::crc32c_combine(value, 0, zeros),
                "{zeros} zero bytes after {value:#x}"
            );
        }
    }

    #[test]
    fn equals_the_crc_computed_over_the_zeros() {
        // Unconditioned CRC of m: crc32c(m) ^ crc32c(zeros of len(m)) (the conditioning is
        // affine and depends only on the length).
        let raw = |m: &[u8]| crc32c::crc32c(m) ^ crc32c::crc32c(&vec![0; m.len()]);
        let message = b"kmirror stamps batches";
        for zeros in [1usize, 7, 100, 1000, 100_000] {
            let mut long = message.to_vec();
            long.resize(message.len() + zeros, 0);
            assert_eq!(append_zeros(raw(message), zeros as u64), raw(&long));
        }
    }
}
