//! Sizes and durations as operators write them: `64MiB`, `10GB`, `250ms`, `30s`.
//!
//! Both types parse from strings (CLI flags, env vars) and deserialize from TOML, where a size
//! may also be a bare integer (bytes) and a duration a bare integer (milliseconds).

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, de};

/// A size in bytes. Accepts `B`, `K/KB/KiB`, `M/MB/MiB`, `G/GB/GiB`, `T/TB/TiB` (case-insensitive).
/// Binary and decimal prefixes differ: `KB` is 1000, `KiB` and `K` are 1024 (as nginx reads `k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// Why a size or duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {why}")]
pub struct UnitError {
    what: &'static str,
    input: String,
    why: &'static str,
}

fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(input: &str) -> Result<Self, UnitError> {
        let err = |why| UnitError {
            what: "size",
            input: input.to_string(),
            why,
        };
        let (num, unit) = split_number(input.trim());
        if num.is_empty() {
            return Err(err("expected a number followed by a unit such as 64MiB"));
        }
        let mult: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "kb" => 1_000,
            "m" | "mib" => 1 << 20,
            "mb" => 1_000_000,
            "g" | "gib" => 1 << 30,
            "gb" => 1_000_000_000,
            "t" | "tib" => 1 << 40,
            "tb" => 1_000_000_000_000,
            _ => {
                return Err(err(
                    "unknown unit (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)",
                ));
            }
        };
        let value: f64 = num.parse().map_err(|_| err("not a number"))?;
        let bytes = value * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 {
            return Err(err("too large"));
        }
        if bytes.fract() != 0.0 {
            return Err(err("not a whole number of bytes"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        for (size, name) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 64MiB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration. Accepts `ns`, `us`, `ms`, `s`, `m`, `h`, `d` suffixes, combinable (`1m30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;
    fn from_str(input: &str) -> Result<Self, UnitError> {
        let err = |why| UnitError {
            what: "duration",
            input: input.to_string(),
            why,
        };
        let mut rest = input.trim();
        if rest.is_empty() {
            return Err(err("expected a number followed by a unit such as 250ms"));
        }
        // Zero needs no unit: `--health-interval 0` means off, whatever the unit.
        if rest.bytes().all(|c| c == b'0') {
            return Ok(HumanDuration(Duration::ZERO));
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, tail) = rest.split_at(end);
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_end);
            let value: f64 = num.parse().map_err(|_| err("not a number"))?;
            let secs = match unit.trim() {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                "" => return Err(err("missing unit (use ms, s, m, h or d)")),
                _ => return Err(err("unknown unit (use ns, us, ms, s, m, h or d)")),
            };
            total += value * secs;
            rest = next;
        }
        Duration::try_from_secs_f64(total)
            .map(HumanDuration)
            .map_err(|_| err("out of range"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !self.0.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{}us", self.0.as_micros())
        } else if !ms.is_multiple_of(1000) || ms == 0 {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 250ms or 30s, or a number of milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_millis(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|ms| HumanDuration(Duration::from_millis(ms)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap().bytes(), 64 << 20);
        assert_eq!("64mib".parse::<ByteSize>().unwrap().bytes(), 64 << 20);
        assert_eq!("1M".parse::<ByteSize>().unwrap().bytes(), 1 << 20);
        assert_eq!("10GB".parse::<ByteSize>().unwrap().bytes(), 10_000_000_000);
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap().bytes(), 1536);
        assert_eq!("4096".parse::<ByteSize>().unwrap().bytes(), 4096);
        assert_eq!(" 2 KiB ".parse::<ByteSize>().unwrap().bytes(), 2048);
    }

    #[test]
    fn bad_sizes_name_the_problem() {
        for bad in ["", "MiB", "12XB", "1.3B", "-1KiB", "99999999999TiB"] {
            let e = bad.parse::<ByteSize>().unwrap_err().to_string();
            assert!(e.contains("invalid size"), "{bad}: {e}");
        }
        assert!(
            "12XB"
                .parse::<ByteSize>()
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
    }

    #[test]
    fn sizes_display_round_trips() {
        for s in ["64MiB", "1GiB", "1000B", "3KiB"] {
            let v: ByteSize = s.parse().unwrap();
            assert_eq!(v.to_string(), s);
            assert_eq!(v.to_string().parse::<ByteSize>().unwrap(), v);
        }
    }

    #[test]
    fn durations_parse_and_combine() {
        assert_eq!(
            "250ms".parse::<HumanDuration>().unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "30s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(30)
        );
        assert_eq!(
            "1m30s".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(90)
        );
        assert_eq!(
            "1.5h".parse::<HumanDuration>().unwrap().get(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "100us".parse::<HumanDuration>().unwrap().get(),
            Duration::from_micros(100)
        );
        // Zero alone needs no unit (`--health-interval 0`); other numbers do.
        assert_eq!("0".parse::<HumanDuration>().unwrap().get(), Duration::ZERO);
        for bad in ["", "10", "01", "ms", "5 parsecs", "1x"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_accepts_strings_and_integers() {
        #[derive(Deserialize)]
        struct C {
            size: ByteSize,
            n: ByteSize,
            wait: HumanDuration,
            ms: HumanDuration,
        }
        let c: C = toml::from_str("size = \"1MiB\"\nn = 512\nwait = \"2s\"\nms = 250").unwrap();
        assert_eq!(c.size.bytes(), 1 << 20);
        assert_eq!(c.n.bytes(), 512);
        assert_eq!(c.wait.get(), Duration::from_secs(2));
        assert_eq!(c.ms.get(), Duration::from_millis(250));
        let e = toml::from_str::<C>("size = \"1 furlong\"\nn = 1\nwait = \"1s\"\nms = 1")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("size") && e.contains("furlong"), "{e}");
    }
}
