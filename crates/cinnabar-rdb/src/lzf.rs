//! LZF compression as Redis uses it for RDB strings (`rdbcompression yes`).
//!
//! The format is Marc Lehmann's liblzf: a sequence of chunks, each starting with a control
//! byte `ctrl`:
//! * `ctrl < 32`: a literal run of `ctrl + 1` bytes follows;
//! * otherwise a back reference: `len = ctrl >> 5` (7 means "7 + next byte"), then one more
//!   byte completes the 13-bit offset `((ctrl & 0x1f) << 8 | byte) + 1` back from the output
//!   position; `len + 2` bytes are copied (the copy may overlap itself).
//!
//! [`compress_into`] follows liblzf 3.6's `lzf_compress` with Redis's settings (`HLOG 16`,
//! `VERY_FAST`), except that its hash table starts cleared (Redis leaves it uninitialized), so
//! the output is a deterministic function of the input. [`decompress`] bounds its output to the
//! length the caller declares and rejects any stream that does not fill it exactly.

/// log2 of the hash table size (Redis: `HLOG 16`).
const HASH_LOG: u32 = 16;
const HASH_SIZE: usize = 1 << HASH_LOG;
/// Longest literal run one control byte covers.
const MAX_LITERAL_RUN: usize = 1 << 5;
/// Farthest back reference (13 bits).
const MAX_OFFSET: usize = 1 << 13;
/// Longest back reference: `7 + 255 + 2` bytes.
const MAX_REFERENCE: usize = (1 << 8) + (1 << 3);

/// Largest expansion factor of a valid LZF stream: a 3-byte back reference yields at most
/// 264 bytes, so `uncompressed <= compressed * 88`.
pub const MAX_EXPANSION_RATIO: u64 = 88;

/// A reusable LZF compressor: owns the 64 Ki-slot hash table so that compressing many small
/// strings does not clear 512 KiB each time (slots carry a generation tag instead).
pub struct Compressor {
    /// Each slot: `generation << 32 | (input position + 1)`; a slot from another generation is
    /// empty.
    table: Vec<u64>,
    generation: u32,
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Compressor {
    /// A compressor with an empty table.
    pub fn new() -> Self {
        Compressor {
            table: vec![0; HASH_SIZE],
            generation: 0,
        }
    }

    /// Compresses `input` into `out` (cleared first). Returns false, leaving `out`
    /// unspecified, when the output would exceed `max_output_bytes` (the caller then stores
    /// the input uncompressed, as Redis does when compression saves nothing).
    pub fn compress_into(
        &mut self,
        input: &[u8],
        max_output_bytes: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        if input.is_empty() || max_output_bytes == 0 || input.len() >= u32::MAX as usize {
            return false;
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.table.iter_mut().for_each(|slot| *slot = 0);
            self.generation = 1;
        }
        let generation = u64::from(self.generation) << 32;
        let table = &mut self.table;
        let in_len = input.len();
        let out_end = max_output_bytes;

        // `lit_start` is the index of the pending literal run's control byte in `out`.
        let mut lit: usize = 0;
        out.push(0);
        let mut lit_start = 0usize;
        let mut ip = 0usize;

        let first = |p: usize| -> u32 { (u32::from(input[p]) << 8) | u32::from(input[p + 1]) };
        let next = |h: u32, p: usize| -> u32 { (h << 8) | u32::from(input[p + 2]) };
        let index = |h: u32| -> usize {
            ((h >> (3 * 8 - HASH_LOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HASH_SIZE - 1)
        };

        if in_len >= 2 {
            let mut hval = first(0);
            while in_len >= 3 && ip < in_len - 2 {
                hval = next(hval, ip);
                let slot = index(hval);
                let previous = table[slot];
                table[slot] = generation | (ip as u64 + 1);
                let reference = if previous >> 32 == generation >> 32 {
                    ((previous & 0xffff_ffff) as usize).checked_sub(1)
                } else {
                    None
                };
                let matched = match reference {
                    Some(r) if r > 0 && r < ip && ip - r - 1 < MAX_OFFSET => {
                        input[r + 2] == input[ip + 2]
                            && input[r] == input[ip]
                            && input[r + 1] == input[ip + 1]
                    }
                    _ => false,
                };
                if let (true, Some(r)) = (matched, reference) {
                    let off = ip - r - 1;
                    let mut len = 2usize;
                    let maxlen = (in_len - ip - len).min(MAX_REFERENCE);
                    // Output space: control byte(s) + offset byte + next run's control byte.
                    if out.len() + 3 + 1 >= out_end
                        && out.len() - usize::from(lit == 0) + 3 + 1 >= out_end
                    {
                        return false;
                    }
                    out[lit_start] = (lit as u8).wrapping_sub(1); // stop run
                    if lit == 0 {
                        out.pop(); // undo run if length is zero
                    }
                    if maxlen > 16 {
                        let mut broke = false;
                        for _ in 0..16 {
                            len += 1;
                            if input[r + len] != input[ip + len] {
                                broke = true;
                                break;
                            }
                        }
                        if !broke {
                            loop {
                                len += 1;
                                if !(len < maxlen && input[r + len] == input[ip + len]) {
                                    break;
                                }
                            }
                        }
                    } else {
                        loop {
                            len += 1;
                            if !(len < maxlen && input[r + len] == input[ip + len]) {
                                break;
                            }
                        }
                    }
                    len -= 2; // the match is len + 2 bytes; the chunk stores len
                    ip += 1;
                    if len < 7 {
                        out.push(((off >> 8) + (len << 5)) as u8);
                    } else {
                        out.push(((off >> 8) + (7 << 5)) as u8);
                        out.push((len - 7) as u8);
                    }
                    out.push(off as u8);
                    lit = 0;
                    lit_start = out.len();
                    out.push(0); // start run
                    ip += len + 1;
                    if ip >= in_len - 2 {
                        break;
                    }
                    // VERY_FAST: re-hash the two positions before ip.
                    ip -= 2;
                    hval = first(ip);
                    hval = next(hval, ip);
                    table[index(hval)] = generation | (ip as u64 + 1);
                    ip += 1;
                    hval = next(hval, ip);
                    table[index(hval)] = generation | (ip as u64 + 1);
                    ip += 1;
                } else {
                    if out.len() >= out_end {
                        return false;
                    }
                    lit += 1;
                    out.push(input[ip]);
                    ip += 1;
                    if lit == MAX_LITERAL_RUN {
                        out[lit_start] = (lit - 1) as u8;
                        lit = 0;
                        lit_start = out.len();
                        out.push(0);
                    }
                }
            }
        }
        if out.len() + 3 > out_end {
            return false;
        }
        while ip < in_len {
            lit += 1;
            out.push(input[ip]);
            ip += 1;
            if lit == MAX_LITERAL_RUN {
                out[lit_start] = (lit - 1) as u8;
                lit = 0;
                lit_start = out.len();
                out.push(0);
            }
        }
        out[lit_start] = (lit as u8).wrapping_sub(1);
        if lit == 0 {
            out.pop();
        }
        out.len() <= out_end
    }
}

/// Compresses `input`, returning None when the result would not fit in `max_output_bytes`.
pub fn compress(input: &[u8], max_output_bytes: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    Compressor::new()
        .compress_into(input, max_output_bytes, &mut out)
        .then_some(out)
}

/// Why an LZF stream was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// A literal run or back reference would write past the declared output length.
    OutputOverrun,
    /// A chunk is cut short by the end of the input.
    InputTruncated,
    /// A back reference points before the start of the output.
    BadReference,
    /// The stream ended before producing the declared length.
    ShortOutput,
}

impl std::fmt::Display for LzfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LzfError::OutputOverrun => "LZF output exceeds the declared length",
            LzfError::InputTruncated => "LZF input truncated",
            LzfError::BadReference => "LZF back reference before start of output",
            LzfError::ShortOutput => "LZF output shorter than the declared length",
        })
    }
}

/// Decompresses `input`, which must expand to exactly `output_len_bytes` bytes. The output is
/// allocated once at that size: callers bound it (see [`MAX_EXPANSION_RATIO`]) before calling.
pub fn decompress(input: &[u8], output_len_bytes: usize) -> Result<Vec<u8>, LzfError> {
    let mut out: Vec<u8> = Vec::with_capacity(output_len_bytes);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > output_len_bytes {
                return Err(LzfError::OutputOverrun);
            }
            let literal = input.get(ip..ip + run).ok_or(LzfError::InputTruncated)?;
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or(LzfError::InputTruncated)?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip).ok_or(LzfError::InputTruncated)?);
            ip += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            len += 2;
            if out.len() + len > output_len_bytes {
                return Err(LzfError::OutputOverrun);
            }
            let start = out.len().checked_sub(back).ok_or(LzfError::BadReference)?;
            if back >= len {
                out.extend_from_within(start..start + len);
            } else {
                for i in 0..len {
                    let byte = out[start + i];
                    out.push(byte);
                }
            }
        }
    }
    if out.len() != output_len_bytes {
        return Err(LzfError::ShortOutput);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_repetitive_and_random_data() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"abcabcabcabcabcabcabcabcabcabcabcXYZabcabcabcabcabc".to_vec(),
            (0..5000u32).flat_map(|i| (i % 251).to_le_bytes()).collect(),
            vec![7u8; 100_000],
        ];
        let mut seed = 0x1234_5678_u32;
        inputs.push(
            (0..4000)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (seed >> 16) as u8 & 0x0f
                })
                .collect(),
        );
        let mut compressor = Compressor::new();
        let mut out = Vec::new();
        for input in inputs {
            assert!(compressor.compress_into(&input, input.len(), &mut out));
            assert!(out.len() < input.len());
            assert_eq!(decompress(&out, input.len()).expect("valid stream"), input);
        }
    }

    #[test]
    fn refuses_when_output_does_not_fit() {
        assert!(compress(b"abcdefghijklmnopqrstuvwxyz", 10).is_none());
        assert!(compress(b"", 10).is_none());
    }

    #[test]
    fn decompress_rejects_bad_streams() {
        assert_eq!(decompress(&[5, b'a'], 6), Err(LzfError::InputTruncated));
        assert_eq!(decompress(&[0, b'a'], 0), Err(LzfError::OutputOverrun));
        assert_eq!(
            decompress(&[0, b'a', 0x20, 5], 4),
            Err(LzfError::BadReference)
        );
        assert_eq!(decompress(&[0, b'a'], 2), Err(LzfError::ShortOutput));
        assert_eq!(
            decompress(&[0, b'a', 0x20, 0], 4).expect("overlapping copy"),
            b"aaaa"
        );
    }
}
