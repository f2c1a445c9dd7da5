//! A whole GGUF model onto the GPU at bus speed, through the loader pipeline
//! ([`crate::pipeline`]): compressed blocks cross the bus (1 to 8 bits a
//! weight, not 16) and are decoded in device memory.

use cudarc::driver::CudaSlice;

use super::Gpu;
use crate::error::Result;
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::parallel::Loaded;
use crate::pipeline::Pipeline;
pub use crate::pipeline::{LoadOptions, LoadReport};
use crate::shard::Shard;

/// One decoded tensor (or shard of one) in device memory.
pub type DeviceTensor<O> = Loaded<CudaSlice<O>>;

/// Every tensor of a file, decoded on the device.
pub struct DeviceModel<O> {
    pub tensors: Vec<DeviceTensor<O>>,
}

impl Gpu {
    /// Decodes every tensor of `file` into device memory as `O`, the outputs
    /// allocated in the order of this `Gpu`'s stream and complete on return.
    /// `progress` is called with the compressed bytes done so far.
    pub fn load_model<O: OutElem>(
        &self,
        file: &GgufFile,
        opts: &LoadOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(DeviceModel<O>, LoadReport)> {
        let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
        let mut pipeline = Pipeline::new(self, opts)?;
        let (outs, report) = pipeline.load::<O>(self, &self.stream, file, &tensors, progress)?;
        let tensors = tensors
            .iter()
            .zip(outs)
            .map(|(t, data)| DeviceTensor {
                name: t.name.clone(),
                source_type: t.ty,
                shard: Shard::whole(t),
                shape: t.shape_row_major(),
                data,
            })
            .collect();
        Ok((DeviceModel { tensors }, report))
    }
}
