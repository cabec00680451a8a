//! Double formatting compatible with Redis 7.0: `%.17g` (used for ZSCORE, ZINCRBY, RESP3
//! doubles, ...) and the "human" long-double style used by INCRBYFLOAT/HINCRBYFLOAT lives in
//! the server's string commands. Infinity is spelled `inf` / `-inf`, NaN `nan`, like glibc.

/// Formats `d` exactly like C's `printf("%.{precision}g", d)` with glibc.
pub fn format_g(d: f64, precision: usize) -> String {
    let p = precision.max(1);
    if d.is_nan() {
        return if d.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Scientific form with p significant digits tells us the decimal exponent after rounding.
    let sci = format!("{:.*e}", p - 1, d);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(&mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", m, sign, exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, d))
    }
}

/// `%.17g`, the format of every double reply in Redis 7.0.
pub fn format_double(d: f64) -> String {
    format_g(d, 17)
}

fn strip_zeros(s: &str) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0');
        t.trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_printf_g17() {
        assert_eq!(format_double(1.1), "1.1000000000000001");
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_double(123456789.0), "123456789");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(3.0e300), "3.0000000000000002e+300");
        assert_eq!(format_g(0.5, 6), "0.5");
        assert_eq!(format_g(1234567.0, 6), "1.23457e+06");
    }
}
