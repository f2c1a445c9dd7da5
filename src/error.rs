//! The crate's error type: every failure names what is wrong and where.

use std::fmt;

use crate::types::GgmlType;

/// A result whose error is the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure of the crate, naming what is wrong and where.
///
/// Non-exhaustive: new failures get new variants; match the ones you handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure, with the path or operation it concerns.
    Io {
        /// The path or operation.
        context: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// A malformed GGUF file: what is wrong, and the byte offset where it was found.
    Gguf {
        /// Where in the file, bytes from its start.
        offset: u64,
        /// What is wrong there.
        message: String,
    },
    /// A type ggml defines but has no dequantizer for (q8_1, q8_K, the integer types).
    Unsupported {
        /// The tensor of that type, where one is concerned.
        tensor: Option<String>,
        /// The type.
        ty: GgmlType,
    },
    /// Input or output lengths that do not fit the type.
    Length(String),
    /// A tensor asked for by name that the file does not hold.
    NoSuchTensor(String),
    /// The GPU or its driver: not present, not usable, or a failed call. Its
    /// [`CudaError::kind`] says which (out of memory, a failed launch, no
    /// driver, no device, ...); [`std::error::Error::source`] is the driver's
    /// own error where a driver call failed.
    Cuda(CudaError),
    /// Anything else the caller asked for that cannot be done, with the reason.
    Invalid(String),
    /// A failure of a library the crate hands its results to (candle), with
    /// what was being done; [`std::error::Error::source`] is that library's
    /// own error.
    External {
        /// What was being done ("tensor 'x'").
        context: String,
        /// The library's error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// A malformed file: `message` of the bytes at `offset`.
    pub fn gguf(offset: u64, message: impl Into<String>) -> Self {
        Error::Gguf {
            offset,
            message: message.into(),
        }
    }
    /// An I/O failure while doing `context` (naming the path).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// A failed call of the CUDA driver, made while doing `context` ("launching
    /// gdq_q4_0_f32", "allocating the output"): [`CudaError::driver`] as an
    /// [`Error`]. The one way the crate (and its command line) turns a
    /// cudarc error into its own.
    #[cfg(feature = "cuda")]
    pub fn cuda(context: impl Into<String>, e: cudarc::driver::DriverError) -> Self {
        Error::Cuda(CudaError::driver(context, e))
    }
    /// The same error, said of a named tensor where it names none yet.
    pub fn for_tensor(self, name: &str) -> Self {
        match self {
            Error::Unsupported { tensor: None, ty } => Error::Unsupported {
                tensor: Some(name.to_string()),
                ty,
            },
            Error::Length(m) if !m.starts_with(&named(name)) => {
                Error::Length(format!("{}{m}", named(name)))
            }
            Error::Cuda(mut e) if !e.context.starts_with(&named(name)) => {
                e.context = format!("{}{}", named(name), e.context);
                Error::Cuda(e)
            }
            other => other,
        }
    }
}

/// How an error names its tensor: the start of its message.
fn named(tensor: &str) -> String {
    format!("tensor '{tensor}': ")
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
            Error::Cuda(e) => e.write_raw(f),
            Error::Invalid(m) => f.write_str(m),
            Error::External { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::External { source, .. } => Some(source.as_ref()),
            #[cfg(feature = "cuda")]
            Error::Cuda(e) => e
                .driver_error()
                .map(|d| d as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

impl From<CudaError> for Error {
    fn from(e: CudaError) -> Self {
        Error::Cuda(e)
    }
}

/// What kind of CUDA failure an [`Error::Cuda`] is: what an engine can act on
/// (free memory and retry, pick another device, fall back to the CPU).
///
/// Non-exhaustive: finer kinds may be split out of [`CudaErrorKind::Other`]
/// later; match the ones you handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CudaErrorKind {
    /// No usable CUDA driver: the library (libcuda) cannot be loaded, or it
    /// is a stub, too old for this build, or mismatched with the kernel
    /// module (`CUDA_ERROR_STUB_LIBRARY`, `CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER`,
    /// `CUDA_ERROR_SYSTEM_DRIVER_MISMATCH`, `CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE`).
    NoDriver,
    /// No such device: the machine has none (`CUDA_ERROR_NO_DEVICE`), or the
    /// ordinal is beyond the device count (`CUDA_ERROR_INVALID_DEVICE`).
    NoDevice,
    /// The device exists but cannot be used now: exclusive or prohibited
    /// compute mode, lost, unlicensed, or its system not ready
    /// (`CUDA_ERROR_DEVICE_UNAVAILABLE`, `CUDA_ERROR_DEVICE_NOT_LICENSED`,
    /// `CUDA_ERROR_SYSTEM_NOT_READY`).
    DeviceUnavailable,
    /// This build embeds no CUDA kernels (nvcc was not found when it was
    /// compiled).
    NoKernels,
    /// The embedded kernels cannot be loaded on this device: no binary for
    /// its architecture and no PTX the driver can compile
    /// (`CUDA_ERROR_NO_BINARY_FOR_GPU`, `CUDA_ERROR_INVALID_IMAGE`,
    /// `CUDA_ERROR_INVALID_PTX`, `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`,
    /// `CUDA_ERROR_JIT_COMPILER_NOT_FOUND`, `CUDA_ERROR_JIT_COMPILATION_DISABLED`).
    KernelsNotLoadable,
    /// Device (or pinned host) memory is exhausted: `CUDA_ERROR_OUT_OF_MEMORY`.
    /// The context stays usable: freeing memory and retrying may succeed.
    OutOfMemory,
    /// A launch was refused or a kernel faulted: `CUDA_ERROR_LAUNCH_FAILED`,
    /// `CUDA_ERROR_ILLEGAL_ADDRESS`, `CUDA_ERROR_MISALIGNED_ADDRESS`,
    /// `CUDA_ERROR_ILLEGAL_INSTRUCTION`, `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`,
    /// `CUDA_ERROR_LAUNCH_TIMEOUT`, an uncorrectable ECC error, ... Most of
    /// these are sticky: the context is unusable afterwards.
    LaunchFailed,
    /// Any other failure (an invalid value or handle, an unsupported call, an
    /// unknown error, ...): [`CudaError::code`] says which where the driver
    /// gave one.
    Other,
}

impl CudaErrorKind {
    /// The kind of a driver result code (a `CUresult`, as a number):
    /// [`CudaErrorKind::Other`] for any code not listed at a kind.
    pub fn of_code(code: u32) -> Self {
        use CudaErrorKind::*;
        match code {
            2 => OutOfMemory,
            // STUB_LIBRARY, CALL_REQUIRES_NEWER_DRIVER,
            // SYSTEM_DRIVER_MISMATCH, COMPAT_NOT_SUPPORTED_ON_DEVICE
            34 | 36 | 803 | 804 => NoDriver,
            // NO_DEVICE, INVALID_DEVICE
            100 | 101 => NoDevice,
            // DEVICE_UNAVAILABLE, DEVICE_NOT_LICENSED, SYSTEM_NOT_READY
            46 | 102 | 802 => DeviceUnavailable,
            // INVALID_IMAGE, NO_BINARY_FOR_GPU, INVALID_PTX,
            // JIT_COMPILER_NOT_FOUND, UNSUPPORTED_PTX_VERSION,
            // JIT_COMPILATION_DISABLED
            200 | 209 | 218 | 221 | 222 | 223 => KernelsNotLoadable,
            // ECC_UNCORRECTABLE, NVLINK_UNCORRECTABLE, CONTAINED;
            // ILLEGAL_ADDRESS, LAUNCH_OUT_OF_RESOURCES, LAUNCH_TIMEOUT,
            // LAUNCH_INCOMPATIBLE_TEXTURING; ASSERT; HARDWARE_STACK_ERROR,
            // ILLEGAL_INSTRUCTION, MISALIGNED_ADDRESS, INVALID_ADDRESS_SPACE,
            // INVALID_PC, LAUNCH_FAILED, COOPERATIVE_LAUNCH_TOO_LARGE
            214 | 220 | 226 | 700..=703 | 710 | 714..=720 => LaunchFailed,
            _ => Other,
        }
    }
}

/// A CUDA failure: its [`kind`](CudaError::kind), what the crate was doing
/// (its [`context`](CudaError::context), with the tensor's name where one is
/// known), and, where a driver call failed, the driver's result
/// [`code`](CudaError::code) and error (the [`std::error::Error::source`] of
/// the [`Error::Cuda`] holding it).
///
/// Displayed as `CUDA: <context>: <the driver's error name (description)>`.
#[derive(Clone)]
#[non_exhaustive]
pub struct CudaError {
    kind: CudaErrorKind,
    context: String,
    /// The driver's name and description of the failure, read when it
    /// happened (the driver's description may be of the thread's last call).
    detail: Option<String>,
    code: Option<u32>,
    #[cfg(feature = "cuda")]
    driver: Option<cudarc::driver::DriverError>,
}

impl CudaError {
    /// A failure of `kind` where no driver call failed (no driver library,
    /// no such device, no kernels in this build, or a failure of the
    /// emulated device or the PTX interpreter), said by `message`.
    pub fn new(kind: CudaErrorKind, message: impl Into<String>) -> Self {
        CudaError {
            kind,
            context: message.into(),
            detail: None,
            code: None,
            #[cfg(feature = "cuda")]
            driver: None,
        }
    }

    /// A failed call of the CUDA driver, made while doing `context`: its kind
    /// from the result code ([`CudaErrorKind::of_code`]), and the driver's
    /// name and description of it, asked for now.
    #[cfg(feature = "cuda")]
    pub fn driver(context: impl Into<String>, e: cudarc::driver::DriverError) -> Self {
        let code = e.0 as u32;
        let name = format!("{:?}", e.0);
        // The driver's library is loaded: a `DriverError` comes from a call
        // into it. fakecuda's description is of the thread's last failed
        // call, so it is read here, before any other call.
        let detail = match e.error_string() {
            Ok(s) => {
                let s = s.to_string_lossy();
                if s.starts_with(&name) {
                    s.into_owned()
                } else {
                    format!("{name} ({s})")
                }
            }
            Err(_) => name,
        };
        CudaError {
            kind: CudaErrorKind::of_code(code),
            context: context.into(),
            detail: Some(detail),
            code: Some(code),
            driver: Some(e),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> CudaErrorKind {
        self.kind
    }

    /// What the crate was doing ("launching gdq_q4_0_f32", "tensor 'x':
    /// allocating 4096 output elements"), or, where no driver call failed,
    /// the whole message.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The driver's result code (a `CUresult`, as a number: 2 is
    /// `CUDA_ERROR_OUT_OF_MEMORY`) where a driver call failed; `None` for a
    /// failure found before any call, or on the emulated device.
    pub fn code(&self) -> Option<u32> {
        self.code
    }

    /// The driver's error, where a driver call failed.
    #[cfg(feature = "cuda")]
    pub fn driver_error(&self) -> Option<&cudarc::driver::DriverError> {
        self.driver.as_ref()
    }

    /// The message, unescaped ([`Error`]'s `Display` escapes the whole).
    fn write_raw(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CUDA: {}", self.context)?;
        match &self.detail {
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for CudaError {
    /// `CUDA: <context>: <the driver's error>`, control characters escaped
    /// as [`Error`]'s are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = Raw(self).to_string();
        f.write_str(&crate::text::escape(&message))
    }
}

/// A [`CudaError`]'s message as it is.
struct Raw<'a>(&'a CudaError);

impl fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write_raw(f)
    }
}

impl fmt::Debug for CudaError {
    /// The fields, the driver's error as its code and the description read
    /// when it happened (cudarc's `Debug` of it would call into the driver).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CudaError")
            .field("kind", &self.kind)
            .field("context", &self.context)
            .field("code", &self.code)
            .field("detail", &self.detail)
            .finish()
    }
}

impl std::error::Error for CudaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        #[cfg(feature = "cuda")]
        if let Some(d) = &self.driver {
            return Some(d);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every driver code listed at a kind maps to it, and every other code
    /// in the driver's range to `Other`; the codes are cudarc's, so a wrong
    /// number here is caught too.
    #[cfg(feature = "cuda")]
    #[test]
    fn driver_codes_map_to_their_kinds() {
        use cudarc::driver::sys::CUresult as R;
        use CudaErrorKind::*;
        let listed = [
            (R::CUDA_ERROR_OUT_OF_MEMORY, OutOfMemory),
            (R::CUDA_ERROR_STUB_LIBRARY, NoDriver),
            (R::CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER, NoDriver),
            (R::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, NoDriver),
            (R::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, NoDriver),
            (R::CUDA_ERROR_NO_DEVICE, NoDevice),
            (R::CUDA_ERROR_INVALID_DEVICE, NoDevice),
            (R::CUDA_ERROR_DEVICE_UNAVAILABLE, DeviceUnavailable),
            (R::CUDA_ERROR_DEVICE_NOT_LICENSED, DeviceUnavailable),
            (R::CUDA_ERROR_SYSTEM_NOT_READY, DeviceUnavailable),
            (R::CUDA_ERROR_INVALID_IMAGE, KernelsNotLoadable),
            (R::CUDA_ERROR_NO_BINARY_FOR_GPU, KernelsNotLoadable),
            (R::CUDA_ERROR_INVALID_PTX, KernelsNotLoadable),
            (R::CUDA_ERROR_JIT_COMPILER_NOT_FOUND, KernelsNotLoadable),
            (R::CUDA_ERROR_UNSUPPORTED_PTX_VERSION, KernelsNotLoadable),
            (R::CUDA_ERROR_JIT_COMPILATION_DISABLED, KernelsNotLoadable),
            (R::CUDA_ERROR_ECC_UNCORRECTABLE, LaunchFailed),
            (R::CUDA_ERROR_NVLINK_UNCORRECTABLE, LaunchFailed),
            (R::CUDA_ERROR_CONTAINED, LaunchFailed),
            (R::CUDA_ERROR_ILLEGAL_ADDRESS, LaunchFailed),
            (R::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, LaunchFailed),
            (R::CUDA_ERROR_LAUNCH_TIMEOUT, LaunchFailed),
            (R::CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING, LaunchFailed),
            (R::CUDA_ERROR_ASSERT, LaunchFailed),
            (R::CUDA_ERROR_HARDWARE_STACK_ERROR, LaunchFailed),
            (R::CUDA_ERROR_ILLEGAL_INSTRUCTION, LaunchFailed),
            (R::CUDA_ERROR_MISALIGNED_ADDRESS, LaunchFailed),
            (R::CUDA_ERROR_INVALID_ADDRESS_SPACE, LaunchFailed),
            (R::CUDA_ERROR_INVALID_PC, LaunchFailed),
            (R::CUDA_ERROR_LAUNCH_FAILED, LaunchFailed),
            (R::CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, LaunchFailed),
        ];
        for (code, kind) in listed {
            assert_eq!(CudaErrorKind::of_code(code as u32), kind, "{code:?}");
        }
        for code in [
            R::CUDA_ERROR_INVALID_VALUE,
            R::CUDA_ERROR_NOT_INITIALIZED,
            R::CUDA_ERROR_DEINITIALIZED,
            R::CUDA_ERROR_INVALID_CONTEXT,
            R::CUDA_ERROR_INVALID_HANDLE,
            R::CUDA_ERROR_NOT_FOUND,
            R::CUDA_ERROR_NOT_READY,
            R::CUDA_ERROR_CONTEXT_IS_DESTROYED,
            R::CUDA_ERROR_NOT_SUPPORTED,
            R::CUDA_ERROR_UNKNOWN,
        ] {
            assert_eq!(CudaErrorKind::of_code(code as u32), Other, "{code:?}");
        }
        // no code outside the list has a kind of its own
        let kinded = (0..=1000u32)
            .filter(|&c| CudaErrorKind::of_code(c) != Other)
            .count();
        assert_eq!(kinded, listed.len());
    }

    /// An error said of its tensor twice (by a loader, then by its
    /// caller) names it once.
    #[test]
    fn a_tensor_is_named_once() {
        let cuda = Error::Cuda(CudaError::new(CudaErrorKind::OutOfMemory, "1 byte"));
        let length = Error::Length("3 bytes".into());
        for e in [cuda, length] {
            let twice = e.for_tensor("w").for_tensor("w").to_string();
            assert_eq!(twice.matches("tensor 'w'").count(), 1, "{twice}");
        }
        let other = Error::Length("3 bytes".into())
            .for_tensor("a")
            .for_tensor("b");
        assert!(
            other.to_string().contains("tensor 'b': tensor 'a'"),
            "{other}"
        );
    }

    /// Another library's error keeps its own error as the source, and
    /// says what was being done.
    #[test]
    fn an_external_error_keeps_its_source() {
        use std::error::Error as _;
        let inner = std::io::Error::other("shape mismatch");
        let e = Error::External {
            context: "tensor 'w': candle".into(),
            source: Box::new(inner),
        };
        assert_eq!(e.to_string(), "tensor 'w': candle: shape mismatch");
        let source = e.source().expect("the source is kept");
        assert_eq!(source.to_string(), "shape mismatch");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn a_cuda_error_keeps_its_kind_and_names_its_tensor() {
        let e = Error::from(CudaError::new(
            CudaErrorKind::NoDevice,
            "no CUDA device 3: this machine has 1",
        ));
        assert_eq!(e.to_string(), "CUDA: no CUDA device 3: this machine has 1");
        assert!(std::error::Error::source(&e).is_none());
        let e = e.for_tensor("blk.0.\u{1b}[2J");
        assert_eq!(
            e.to_string(),
            "CUDA: tensor 'blk.0.\\u{1b}[2J': no CUDA device 3: this machine has 1"
        );
        let Error::Cuda(c) = &e else { panic!("{e:?}") };
        assert_eq!(c.kind(), CudaErrorKind::NoDevice);
        assert_eq!(c.code(), None);
        assert_eq!(c.to_string(), e.to_string());
        assert!(format!("{e:?}").contains("NoDevice"), "{e:?}");
    }
}
