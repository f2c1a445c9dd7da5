//! The crate's error type: every failure names what is wrong and where.

use std::fmt;

use crate::types::GgmlType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure of the crate, naming what is wrong and where.
///
/// Non-exhaustive: new failures get new variants; match the ones you handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure, with the path or operation it concerns.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A malformed GGUF file: what is wrong, and the byte offset where it was found.
    Gguf { offset: u64, message: String },
    /// A type ggml defines but has no dequantizer for (q8_1, q8_K, the integer types).
    Unsupported {
        tensor: Option<String>,
        ty: GgmlType,
    },
    /// Input or output lengths that do not fit the type.
    Length(String),
    /// A tensor asked for by name that the file does not hold.
    NoSuchTensor(String),
    /// The GPU or its driver: not present, not usable, or a failed call.
    Cuda(String),
    /// Anything else the caller asked for that cannot be done, with the reason.
    Invalid(String),
}

impl Error {
    pub fn gguf(offset: u64, message: impl Into<String>) -> Self {
        Error::Gguf {
            offset,
            message: message.into(),
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// The same error, said of a named tensor where it names none yet.
    pub fn for_tensor(self, name: &str) -> Self {
        match self {
            Error::Unsupported { tensor: None, ty } => Error::Unsupported {
                tensor: Some(name.to_string()),
                ty,
            },
            Error::Length(m) => Error::Length(format!("tensor '{name}': {m}")),
            Error::Cuda(m) => Error::Cuda(format!("tensor '{name}': {m}")),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    /// The message, with any control characters that names and keys from a
    /// file brought into it escaped (see [`crate::text`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = Message(self).to_string();
        f.write_str(&crate::text::escape(&message))
    }
}

/// An error's message as it is.
struct Message<'a>(&'a Error);

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Gguf { offset, message } => {
                write!(f, "invalid GGUF at byte {offset}: {message}")
            }
            Error::Unsupported { tensor, ty } => {
                if let Some(t) = tensor {
                    write!(f, "tensor '{t}': ")?;
                }
                write!(f, "type {ty} (id {}) cannot be dequantized: ggml defines no conversion to float for it", ty.id())
            }
            Error::Length(m) => write!(f, "length mismatch: {m}"),
            Error::NoSuchTensor(n) => write!(f, "no tensor named '{n}' in the file"),
            Error::Cuda(m) => write!(f, "CUDA: {m}"),
            Error::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
