//! candle's CUDA devices (feature `candle-cuda`): our kernels in candle's
//! context, the outputs allocated in the order of candle's stream and handed
//! to candle as its storage, without a copy.

use candle_core::{CudaDevice, CudaStorage, DType, Storage, Tensor};
use cudarc::driver::CudaSlice;

use super::{dims, out_type, Part};
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::gpu::Gpu;
use crate::out::OutElem;
use crate::pipeline::{LoadOptions, Loader};

/// Decodes GGUF tensors onto one candle CUDA device: the kernels loaded into
/// its context once, and staging buffers made once, for every call.
pub struct CudaLoader {
    loader: Loader<Gpu>,
    device: CudaDevice,
}

impl CudaLoader {
    /// Loads the kernels into `device`'s context and allocates the staging.
    pub fn new(device: &CudaDevice, opts: &LoadOptions) -> Result<Self> {
        let stream = device.cuda_stream();
        let gpu = Gpu::from_context(stream.context().clone())?;
        Ok(CudaLoader {
            loader: Loader::new(gpu, stream, opts)?,
            device: device.clone(),
        })
    }

    /// Decodes each part into a `dtype` tensor on the device. The outputs are
    /// allocated in the order of candle's stream and complete on return, so
    /// candle may use them on any stream.
    pub fn parts(&self, file: &GgufFile, parts: &[Part], dtype: DType) -> Result<Vec<Tensor>> {
        crate::with_out_elem!(out_type(dtype)?, O => self.typed::<O>(file, parts))
    }

    fn typed<O>(&self, file: &GgufFile, parts: &[Part]) -> Result<Vec<Tensor>>
    where
        O: OutElem + candle_core::cuda::CudaDType,
    {
        let (outs, _) = self.loader.load_parts::<O>(file, parts, &mut |_| {})?;
        parts
            .iter()
            .zip(outs)
            .map(|((t, s), data): (&Part, CudaSlice<O>)| {
                let storage = CudaStorage::wrap_cuda_slice(data, self.device.clone());
                Ok(Tensor::from((
                    Storage::Cuda(storage),
                    dims(s.shape(&t.ne))?,
                )))
            })
            .collect()
    }
}
