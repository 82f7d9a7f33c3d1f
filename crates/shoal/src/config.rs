//! Configuration plumbing shared by the doors.
//!
//! Each door has one serde struct per section (`#[serde(default, deny_unknown_fields)]`) and a
//! clap struct whose flags carry `env = "SHOAL_..."`. The order of precedence is
//! defaults → config file → environment → command line: clap resolves env against flags, and
//! the door overlays whatever clap found onto what the file said. A config error names the
//! file, the key and what was expected, and the process exits before it binds any port.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key, the line and what was expected.
        message: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("invalid config: {key} = {value}: {expected}")]
    Invalid {
        /// The key (`section.key` or `--flag`).
        key: String,
        /// The offending value as written.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A cluster setting (peers, self) is not acceptable.
    #[error(transparent)]
    Cluster(#[from] shoal_cluster::ClusterError),
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(
        key: impl Into<String>,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// Checks that a loaded configuration makes sense as a whole.
pub trait Validate {
    /// Returns the first problem found.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Reads `path` as TOML into `T`. With no path, returns `T::default()`.
pub fn load<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses TOML text into `T`; the error is one line naming the key and the problem.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| one_line(&e))
}

/// toml's errors quote the offending source line over several lines; operators want one.
fn one_line(e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        out.push_str(&format!("at byte {}: ", span.start));
    }
    out.push_str(e.message().trim());
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ByteSize;
    use serde::Deserialize;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        /// Memory budget.
        memory: ByteSize,
        name: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct File {
        cache: Section,
    }

    #[test]
    fn missing_path_gives_defaults() {
        assert_eq!(load::<File>(None).unwrap(), File::default());
    }

    #[test]
    fn reads_sections_with_units() {
        let f: File = parse("[cache]\nmemory = \"64MiB\"\nname = \"a\"\n").unwrap();
        assert_eq!(f.cache.memory.bytes(), 64 << 20);
        assert_eq!(f.cache.name, "a");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse::<File>("[cache]\nmemroy = \"1MiB\"\n").unwrap_err();
        assert!(e.contains("memroy"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn bad_values_are_named() {
        let e = parse::<File>("[cache]\nmemory = \"lots\"\n").unwrap_err();
        assert!(e.contains("lots"), "{e}");
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let e = load::<File>(Some(Path::new("/nonexistent/shoal.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/shoal.toml"), "{e}");
    }
}
