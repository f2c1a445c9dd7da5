//! Loading a model across several devices, tensor-parallel: each device
//! receives and decodes only its own shard of each tensor.
//!
//! A [`ModelLoad`] says which tensors, how each is split across the `world`
//! ranks ([`Split`]: rows, columns, or a whole copy on every rank);
//! [`ModelLoad::plan`] is the resulting assignment, and
//! [`ModelLoad::run`] loads it with one [`Loader`] per rank (a device, its
//! stream and its pinned staging), concurrently, one thread each, all reading
//! the one open file; [`ModelLoad::load_rank`] loads one rank's part on one
//! loader (a world of one: the whole model). Works over any pipeline
//! [`Device`]: GPUs, or emulated devices in tests.
//!
//! ```no_run
//! # fn main() -> gguf_dequant::Result<()> {
//! use gguf_dequant::gguf::GgufFile;
//! use gguf_dequant::gpu::Gpu;
//! use gguf_dequant::parallel::{ModelLoad, Split};
//! use gguf_dequant::pipeline::LoadOptions;
//!
//! let file = GgufFile::open("model.gguf")?;
//! let opts = LoadOptions::default();
//! let gpus = [Gpu::new(0)?.loader(&opts)?, Gpu::new(1)?.loader(&opts)?];
//! let per_rank = ModelLoad::new(&file)
//!     .tensors(|t| t.name.starts_with("blk."))
//!     .world_size(2)
//!     .split(|t| match t.name.rsplit('.').nth(1) {
//!         // Megatron-style: column-parallel in, row-parallel out
//!         Some("attn_q" | "attn_k" | "attn_v" | "ffn_gate" | "ffn_up") => Split::Rows,
//!         Some("attn_output" | "ffn_down") => Split::Cols,
//!         _ => Split::Replicate,
//!     })
//!     .run::<half::bf16, _>(&gpus)?;
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

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::pipeline::{Device, LoadReport, Loader};
use crate::shard::Shard;
pub use crate::shard::Split;
use crate::types::GgmlType;

/// One decoded tensor (or shard of one) in a device's memory.
pub struct Loaded<B> {
    /// The tensor's name in the file.
    pub name: String,
    /// The type it was stored in.
    pub source_type: GgmlType,
    /// The part of the tensor this is.
    pub shard: Shard,
    /// Row-major shape ([`Shard::shape`]: the tensor's own when whole).
    pub shape: Vec<u64>,
    /// The decoded values, in the device's memory.
    pub data: B,
}

/// What one rank loaded.
pub struct RankLoad<B> {
    /// The rank's tensors (or shards of them), in file order.
    pub tensors: Vec<Loaded<B>>,
    /// What the load moved and how long it took.
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
}

impl<'f> ModelLoad<'f> {
    /// Every tensor of `file`, whole, on one rank.
    pub fn new(file: &'f GgufFile) -> Self {
        ModelLoad {
            file,
            select: Arc::new(|_| true),
            split: Arc::new(|_| Split::Replicate),
            world: 1,
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

    /// The number of ranks (default 1): [`ModelLoad::run`] takes one loader each.
    pub fn world_size(mut self, world: usize) -> Self {
        self.world = world as u64;
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

    /// Loads the plan on `loaders`, one per rank (`loaders[r]` loads rank
    /// `r`), all at once, one thread each. Returns each rank's tensors,
    /// complete.
    pub fn run<O, D>(&self, loaders: &[Loader<D>]) -> Result<Vec<RankLoad<D::Out<O>>>>
    where
        O: OutElem,
        D: Device,
        Loader<D>: Sync,
        D::Out<O>: Send,
    {
        let plan = self.plan()?;
        if loaders.len() as u64 != self.world {
            return Err(Error::Invalid(format!(
                "a world of {} ranks loaded on {} devices",
                self.world,
                loaders.len()
            )));
        }
        std::thread::scope(|scope| {
            let loads: Vec<_> = loaders
                .iter()
                .zip(&plan)
                .map(|(loader, parts)| {
                    scope.spawn(move || load(loader, self.file, parts, &mut |_| {}))
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

    /// Loads rank `rank`'s part of the plan on `loader`, on this thread
    /// (in a world of one, rank 0: every selected tensor, whole), calling
    /// `progress` with the compressed bytes done so far.
    pub fn load_rank<O, D>(
        &self,
        loader: &Loader<D>,
        rank: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<RankLoad<D::Out<O>>>
    where
        O: OutElem,
        D: Device,
    {
        let plan = self.plan()?;
        let parts = plan
            .get(rank)
            .ok_or_else(|| Error::Invalid(format!("rank {rank} of a world of {}", self.world)))?;
        load(loader, self.file, parts, progress)
    }
}

/// Loads `parts` of `file` on `loader`: the one place a [`RankLoad`] is made.
fn load<O: OutElem, D: Device>(
    loader: &Loader<D>,
    file: &GgufFile,
    parts: &[(&TensorInfo, Shard)],
    progress: &mut dyn FnMut(u64),
) -> Result<RankLoad<D::Out<O>>> {
    let (outs, report) = loader.load_parts::<O>(file, parts, progress)?;
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
}
