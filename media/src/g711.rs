//! G.711 μ-law and A-law (ITU-T G.711), encode and decode.
//!
//! Written by hand: about forty lines, checked here against the ITU
//! segment tables' end points, and decode tables are built at compile time
//! so that decoding on the receive path is one lookup per sample.
//!
//! Depends on: nothing. No IO, no clock.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encode one 16-bit linear sample as μ-law (G.711 §2, with the usual bias of 0x84).
pub fn ulaw_encode(pcm: i16) -> u8 {
    let mut s = pcm as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    if s > CLIP {
        s = CLIP;
    }
    s += BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while s & mask == 0 && exp > 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exp + 3)) & 0x0F;
    !((sign | (exp << 4) | mantissa) as u8)
}

const fn ulaw_decode_calc(u: u8) -> i16 {
    let u = !u;
    let exp = ((u >> 4) & 7) as i32;
    let mant = (u & 0x0F) as i32;
    let s = (((mant << 3) + BIAS) << exp) - BIAS;
    if u & 0x80 != 0 {
        -s as i16
    } else {
        s as i16
    }
}

/// Encode one 16-bit linear sample as A-law (G.711 §3; even bits inverted by 0x55).
pub fn alaw_encode(pcm: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = (pcm as i32) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = SEG_END.iter().position(|e| v <= *e).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = seg << 4;
    a |= if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (a ^ mask) as u8
}

const fn alaw_decode_calc(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = table(false);
static ALAW_TABLE: [i16; 256] = table(true);

/// Decode one μ-law byte.
#[inline]
pub fn ulaw_decode(u: u8) -> i16 {
    ULAW_TABLE[u as usize]
}

/// Decode one A-law byte.
#[inline]
pub fn alaw_decode(a: u8) -> i16 {
    ALAW_TABLE[a as usize]
}

/// μ-law byte for digital silence (0).
pub const ULAW_SILENCE: u8 = 0xFF;
/// A-law byte for digital silence (0).
pub const ALAW_SILENCE: u8 = 0xD5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_points_match_g711() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
    }

    #[test]
    fn round_trip_error_is_within_the_segment_step() {
        for x in (i16::MIN as i32..=i16::MAX as i32).step_by(7) {
            let x = x as i16;
            for (enc, dec) in [
                (ulaw_encode as fn(i16) -> u8, ulaw_decode as fn(u8) -> i16),
                (alaw_encode, alaw_decode),
            ] {
                let y = dec(enc(x)) as i32;
                let err = (y - x as i32).abs();
                // Quantisation step grows with magnitude: ≤ 1/16 of the value + small floor.
                assert!(
                    err <= (x as i32).abs() / 16 + 16 || err <= 1100,
                    "{x} -> {y}"
                );
                // Re-encoding a decoded value is stable (up to ±0 in μ-law).
                assert_eq!(dec(enc(dec(enc(x)))), dec(enc(x)));
            }
        }
    }
}
