//! gguf-dequant: decode the quantized tensors of GGUF files into f32, f16 or bf16.
//!
//! - [`gguf`]: a memory-mapped GGUF reader that refuses malformed files with an
//!   error naming the field and byte offset.
//! - [`cpu`]: a decoder for every GGML type ggml can dequantize, bit-identical
//!   to ggml in f32 (f16/bf16 are that value rounded to nearest even), threaded,
//!   with SIMD kernels chosen at run time ([`cpu::fast`]).
//! - [`gpu`]: the same decoders as CUDA kernels (`cuda/`), launched on raw
//!   blocks in device memory; [`emulated`] runs those kernels on the CPU.
//!
//! ```no_run
//! use gguf_dequant::{gguf::GgufFile, cpu};
//! let file = GgufFile::open("model.gguf")?;
//! for t in file.tensors() {
//!     let values: Vec<f32> = cpu::dequantize_to_vec(t.ty, file.tensor_data(t)?)?;
//!     println!("{} {:?}: {} values", t.name, t.ne, values.len());
//! }
//! # Ok::<(), gguf_dequant::Error>(())
//! ```

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code
)]
pub mod blocks;
pub mod convert;
pub mod cpu;
pub mod device;
#[cfg(feature = "cuda")]
pub mod emulated;
pub mod error;
/// The one list of formats (`for_each_format!`) and the launch constants
/// shared with the CUDA side.
pub mod formats;
pub mod gguf;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod kernels;
pub mod out;
#[cfg(feature = "peers")]
pub mod peers;
pub mod safetensors;
pub mod synth;
pub mod tables;
pub mod types;

pub use error::{Error, Result};
pub use out::{as_bytes, to_bits, OutElem};
pub use types::{GgmlType, OutType};
