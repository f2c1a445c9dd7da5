//! candle's CUDA devices (feature `candle-cuda`): our kernels in candle's
//! context, the outputs allocated in the order of candle's stream and handed
//! to candle as its storage, without a copy.

use std::sync::Mutex;

use candle_core::{CudaDevice, CudaStorage, DType, Storage, Tensor};
use cudarc::driver::CudaSlice;

use super::{dims, unsupported_dtype, Part};
use crate::error::Result;
use crate::gguf::GgufFile;
use crate::gpu::Gpu;
use crate::out::OutElem;
use crate::pipeline::{LoadOptions, Pipeline};

/// Decodes GGUF tensors onto one candle CUDA device: the kernels loaded into
/// its context once, and staging buffers made once, for every call.
pub struct CudaLoader {
    gpu: Gpu,
    device: CudaDevice,
    pipeline: Mutex<Pipeline<Gpu>>,
}

impl CudaLoader {
    /// Loads the kernels into `device`'s context and allocates the staging.
    pub fn new(device: &CudaDevice, opts: &LoadOptions) -> Result<Self> {
        let stream = device.cuda_stream();
        let gpu = Gpu::from_context(stream.context().clone())?;
        let pipeline = Mutex::new(Pipeline::new(&gpu, opts)?);
        Ok(CudaLoader {
            gpu,
            device: device.clone(),
            pipeline,
        })
    }

    /// Decodes each part into a `dtype` tensor on the device. The outputs are
    /// allocated in the order of candle's stream and complete on return, so
    /// candle may use them on any stream.
    pub fn parts(&self, file: &GgufFile, parts: &[Part], dtype: DType) -> Result<Vec<Tensor>> {
        match dtype {
            DType::F32 => self.typed::<f32>(file, parts),
            DType::F16 => self.typed::<half::f16>(file, parts),
            DType::BF16 => self.typed::<half::bf16>(file, parts),
            other => Err(unsupported_dtype(other)),
        }
    }

    fn typed<O>(&self, file: &GgufFile, parts: &[Part]) -> Result<Vec<Tensor>>
    where
        O: OutElem + candle_core::cuda::CudaDType,
    {
        let stream = self.device.cuda_stream();
        let mut pipeline = self.pipeline.lock().unwrap_or_else(|p| p.into_inner());
        let (outs, _) = pipeline.load_parts::<O>(&self.gpu, &stream, file, parts, &mut |_| {})?;
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
