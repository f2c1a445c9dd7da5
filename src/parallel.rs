//! Loading a model across several devices, tensor-parallel: each device
//! receives and decodes only its own shard of each tensor.
//!
//! A [`ModelLoad`] says which tensors, how each is split across the `world`
//! ranks ([`Split`]: rows, columns, or a whole copy on every rank) and how to
//! stage; [`ModelLoad::plan`] is the resulting assignment, and
//! [`ModelLoad::run`] loads it on one device per rank, concurrently: one
//! thread, one [`Pipeline`] (its own pinned staging and streams) per device,
//! all reading the one open file. Works over any pipeline [`Device`]: GPUs,
//! or emulated devices in tests.
//!
//! ```no_run
//! # fn main() -> gguf_dequant::Result<()> {
//! use gguf_dequant::gguf::GgufFile;
//! use gguf_dequant::gpu::Gpu;
//! use gguf_dequant::parallel::{ModelLoad, Split};
//!
//! let file = GgufFile::open("model.gguf")?;
//! let gpus = [Gpu::new(0)?, Gpu::new(1)?];
//! let per_rank = ModelLoad::new(&file)
//!     .tensors(|t| t.name.starts_with("blk."))
//!     .world_size(2)
//!     .split(|t| match t.name.rsplit('.').nth(1) {
//!         // Megatron-style: column-parallel in, row-parallel out
//!         Some("attn_q" | "attn_k" | "attn_v" | "ffn_gate" | "ffn_up") => Split::Rows,
//!         Some("attn_output" | "ffn_down") => Split::Cols,
//!         _ => Split::Replicate,
//!     })
//!     .run_gpus::<half::bf16>(&gpus)?;
//! # let _ = per_rank; Ok(()) }
//! ```
//!
//! Rows and columns are those of the row-major view ([`crate::shard`]): a
//! weight of row-major shape `[out, in]` split by [`Split::Rows`] gives each
//! rank `out / world` whole output rows; [`Split::Cols`] gives each rank a
//! range of every row's inputs, cut at block boundaries (ranks get whole
//! blocks: with `in / block` not a multiple of `world`, the last ranks get
//! fewer, and a rank with none is an error, never a widened or padded shard).

use std::sync::Arc;

use cudarc::driver::CudaSlice;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::gpu::Gpu;
use crate::out::OutElem;
use crate::pipeline::{Device, LoadOptions, LoadReport, Pipeline};
use crate::shard::Shard;
pub use crate::shard::Split;
use crate::types::GgmlType;

/// One decoded tensor (or shard of one) in a device's memory.
pub struct Loaded<B> {
    pub name: String,
    /// The type it was stored in.
    pub source_type: GgmlType,
    /// The part of the tensor this is.
    pub shard: Shard,
    /// Row-major shape ([`Shard::shape`]: the tensor's own when whole).
    pub shape: Vec<u64>,
    pub data: B,
}

/// One decoded tensor (or shard of one) in a GPU's memory.
pub type DeviceTensor<O> = Loaded<CudaSlice<O>>;

/// Every tensor of a file, decoded on one GPU.
pub struct DeviceModel<O> {
    pub tensors: Vec<DeviceTensor<O>>,
}

impl Gpu {
    /// A whole GGUF model onto this GPU at bus speed, through the loader
    /// pipeline ([`crate::pipeline`]): compressed blocks cross the bus (1 to 8
    /// bits a weight, not 16) and are decoded in device memory. Every tensor
    /// of `file` is decoded as `O`, the outputs allocated in the order of this
    /// `Gpu`'s stream and complete on return. `progress` is called with the
    /// compressed bytes done so far.
    pub fn load_model<O: OutElem>(
        &self,
        file: &GgufFile,
        opts: &LoadOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(DeviceModel<O>, LoadReport)> {
        let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
        let mut pipeline = Pipeline::new(self, opts)?;
        let (outs, report) = pipeline.load::<O>(self, self.stream(), file, &tensors, progress)?;
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

/// What one rank loaded.
pub struct RankLoad<B> {
    pub tensors: Vec<Loaded<B>>,
    pub report: LoadReport,
}

type Select<'f> = Arc<dyn Fn(&TensorInfo) -> bool + Send + Sync + 'f>;
type SplitFn<'f> = Arc<dyn Fn(&TensorInfo) -> Split + Send + Sync + 'f>;

/// A model load, built up option by option (see the module documentation).
#[derive(Clone)]
pub struct ModelLoad<'f> {
    file: &'f GgufFile,
    select: Select<'f>,
    split: SplitFn<'f>,
    world: u64,
    opts: LoadOptions,
}

impl<'f> ModelLoad<'f> {
    /// Every tensor of `file`, whole, on one rank, staged as
    /// [`LoadOptions::default`].
    pub fn new(file: &'f GgufFile) -> Self {
        ModelLoad {
            file,
            select: Arc::new(|_| true),
            split: Arc::new(|_| Split::Replicate),
            world: 1,
            opts: LoadOptions::default(),
        }
    }

    /// Only the tensors `select` accepts.
    pub fn tensors(mut self, select: impl Fn(&TensorInfo) -> bool + Send + Sync + 'f) -> Self {
        self.select = Arc::new(select);
        self
    }

    /// How each tensor is split across the ranks (default: replicated).
    pub fn split(mut self, split: impl Fn(&TensorInfo) -> Split + Send + Sync + 'f) -> Self {
        self.split = Arc::new(split);
        self
    }

    /// The number of ranks (default 1): [`ModelLoad::run`] takes one device each.
    pub fn world_size(mut self, world: usize) -> Self {
        self.world = world as u64;
        self
    }

    /// Bytes per pinned staging buffer of each device.
    pub fn chunk_bytes(mut self, bytes: usize) -> Self {
        self.opts.chunk_bytes = bytes;
        self
    }

    /// Staging buffers (one stream each) per device.
    pub fn streams(mut self, streams: usize) -> Self {
        self.opts.streams = streams;
        self
    }

    /// All of the staging options at once.
    pub fn options(mut self, opts: LoadOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The parts each rank loads: for rank `r`, each selected tensor with
    /// its shard, in file order. Errors (checked before anything is loaded):
    /// a world of 0, a type that cannot be decoded, a split with fewer rows
    /// or column blocks than ranks.
    pub fn plan(&self) -> Result<Vec<Vec<(&'f TensorInfo, Shard)>>> {
        if self.world == 0 {
            return Err(Error::Invalid("a world of 0 ranks".into()));
        }
        let chosen: Vec<&TensorInfo> = self
            .file
            .tensors()
            .iter()
            .filter(|t| (self.select)(t))
            .collect();
        for t in &chosen {
            t.check_decodable()?;
        }
        (0..self.world)
            .map(|rank| {
                chosen
                    .iter()
                    .map(|&t| Ok((t, (self.split)(t).shard(t, rank, self.world)?)))
                    .collect()
            })
            .collect()
    }

    /// Loads the plan on `devices`, one per rank, each with the stream its
    /// outputs are allocated in: all devices at once, one thread each.
    /// Returns each rank's tensors, complete.
    pub fn run<O, D>(&self, devices: &[(&D, &D::Stream)]) -> Result<Vec<RankLoad<D::Out<O>>>>
    where
        O: OutElem,
        D: Device + Sync,
        D::Stream: Sync,
        D::Out<O>: Send,
    {
        let plan = self.plan()?;
        if devices.len() as u64 != self.world {
            return Err(Error::Invalid(format!(
                "a world of {} ranks loaded on {} devices",
                self.world,
                devices.len()
            )));
        }
        std::thread::scope(|scope| {
            let loads: Vec<_> = devices
                .iter()
                .zip(&plan)
                .map(|(&(dev, stream), parts)| {
                    scope.spawn(move || -> Result<RankLoad<D::Out<O>>> {
                        let mut pipeline = Pipeline::new(dev, &self.opts)?;
                        let (outs, report) =
                            pipeline.load_parts::<O>(dev, stream, self.file, parts, &mut |_| {})?;
                        let tensors = parts
                            .iter()
                            .zip(outs)
                            .map(|((t, shard), data)| Loaded {
                                name: t.name.clone(),
                                source_type: t.ty,
                                shape: shard.shape(&t.ne),
                                shard: shard.clone(),
                                data,
                            })
                            .collect();
                        Ok(RankLoad { tensors, report })
                    })
                })
                .collect();
            loads
                .into_iter()
                .enumerate()
                .map(|(rank, h)| {
                    h.join().map_err(|_| {
                        Error::Invalid(format!("the loader thread of rank {rank} panicked"))
                    })?
                })
                .collect()
        })
    }

    /// [`ModelLoad::run`] on GPUs, each rank's outputs allocated in the order
    /// of that GPU's stream ([`Gpu::stream`](crate::gpu::Gpu::stream)).
    pub fn run_gpus<O: OutElem>(
        &self,
        gpus: &[crate::gpu::Gpu],
    ) -> Result<Vec<RankLoad<cudarc::driver::CudaSlice<O>>>> {
        let devices: Vec<_> = gpus.iter().map(|g| (g, g.stream())).collect();
        self.run::<O, crate::gpu::Gpu>(&devices)
    }
}
