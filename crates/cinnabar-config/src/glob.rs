//! Redis glob matching (`stringmatchlen` from util.c, 7.0.15 semantics),
//! used by CONFIG GET and reused by the server for KEYS, SCAN MATCH and
//! PSUBSCRIBE.

/// Maximum recursion depth for `*`; deeper patterns never match (Redis
/// protects itself against abusive patterns the same way).
const MAX_NESTING: u32 = 1000;

/// C `tolower` on a (signed) `char` value as glibc does it: only ASCII
/// letters change.
fn lower(c: i32) -> i32 {
    if (b'A' as i32..=b'Z' as i32).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// Byte as a signed C `char` (x86-64), as Redis compares range bounds.
fn sc(c: u8) -> i32 {
    c as i8 as i32
}

/// Match `s` against the glob `pattern` exactly like Redis's
/// `stringmatchlen`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (reversed ranges
/// allowed), `\` escapes. `nocase` folds ASCII case (CONFIG GET uses it;
/// KEYS does not).
pub fn string_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, s, nocase, &mut skip_longer, 0)
}

fn match_impl(
    pattern: &[u8],
    string: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // Pointer emulation: reading at/after the end yields NUL like a C string.
    let pat = |i: usize| -> u8 { pattern.get(i).copied().unwrap_or(0) };
    let str_at = |i: usize| -> u8 { string.get(i).copied().unwrap_or(0) };
    let mut p = 0usize; // index into pattern
    let mut plen = pattern.len();
    let mut si = 0usize; // index into string
    let mut slen = string.len();

    while plen > 0 && slen > 0 {
        match pat(p) {
            b'*' => {
                while plen > 0 && pat(p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if match_impl(
                        pattern.get(p + 1..).unwrap_or(&[]),
                        string.get(si..).unwrap_or(&[]),
                        nocase,
                        skip_longer,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = pat(p) == b'^';
                if not {
                    p += 1;
                    plen = plen.saturating_sub(1);
                }
                let mut matched = false;
                loop {
                    if pat(p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if pat(p) == str_at(si) {
                            matched = true;
                        }
                    } else if pat(p) == b']' {
                        break;
                    } else if plen == 0 {
                        p = p.saturating_sub(1);
                        plen += 1;
                        break;
                    } else if plen >= 3 && pat(p + 1) == b'-' {
                        let mut start = sc(pat(p));
                        let mut end = sc(pat(p + 2));
                        let mut c = sc(str_at(si));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = lower(start);
                            end = lower(end);
                            c = lower(c);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if !nocase {
                        if pat(p) == str_at(si) {
                            matched = true;
                        }
                    } else if lower(sc(pat(p))) == lower(sc(str_at(si))) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            first => {
                let mut c = first;
                if c == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    c = pat(p);
                }
                let equal = if nocase {
                    lower(sc(c)) == lower(sc(str_at(si)))
                } else {
                    c == str_at(si)
                };
                if !equal {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen = plen.saturating_sub(1);
        if slen == 0 {
            while plen > 0 && pat(p) == b'*' {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}
